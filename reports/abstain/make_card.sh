# The model card's issue-22 section (reports/abstain/card.md), then the card itself; run from the repository root.
set -euo pipefail
python -m research.issue22_card --lofo reports/abstain/128-full/abstain.json --default "asymmetric + unlike training" --baseline "photo-aware symmetric + unlike training" --baseline_label "the previous operating point (symmetric band 0.45)" --metrics models/deepfake-detector-clip-cnn-fused/metrics.json --baseline_metrics reports/abstain/test-metrics-previous-default-symmetric.json --benchmark benchmarks/cpu-clip-cnn-fused.json --baseline_benchmark benchmarks/cpu-clip-cnn-fused.json --load benchmarks/load-1client-clip-cnn-fused.json --baseline_load benchmarks/load-1client-clip-cnn-fused.json --note "$(cat reports/abstain/card-note.md)" \
 --ablation "the default: CLIP layer 4 + r1-flip, fused=reports/abstain/128-full/abstain.json#asymmetric + unlike training" \
 --ablation "the same, symmetric band 0.45 (the previous operating point)=reports/abstain/128-full/abstain.json#photo-aware symmetric + unlike training" \
 --ablation "CLIP final class token + r1-flip=reports/abstain/depth/d13/abstain.json#asymmetric + unlike training" \
 --ablation "CLIP layer 4 + final class token + r1-flip (3x the tower's work)=reports/abstain/depth/d4+13/abstain.json#asymmetric + unlike training" \
 --ablation "head C=0.003=reports/abstain/heads/C0.003/abstain.json#asymmetric + unlike training" \
 --ablation "everyday photos weigh 4x=reports/abstain/heads/pw4/abstain.json#asymmetric + unlike training" \
 --ablation "+ 366 reconstruction fakes (taef2)=reports/abstain/heads/recon-w1/abstain.json#asymmetric + unlike training" \
 --ablation "+ the reconstruction fakes at a quarter weight=reports/abstain/heads/recon-w0.25/abstain.json#asymmetric + unlike training" \
 --ablation "CLIP layer 4 + the CNN retrained with the extra data (per fold)=reports/abstain/cnn-folds/fused/abstain.json#asymmetric + unlike training" \
 --ablation "the CNN retrained with the extra data (per fold), alone=reports/abstain/cnn-folds/cnn-only/abstain.json#asymmetric" \
 --ablation "r1-flip alone (Platt per fold)=reports/abstain/cnn-folds/r1-flip-only/abstain.json#asymmetric" \
 --ablation "CLIP layer 4 + r1-flip, weighed on validation (late fusion)=reports/abstain/cnn-folds/late-fusion/abstain.json#asymmetric + unlike training" \
 --ablation_note "$(cat reports/abstain/card-ablation-note.md)" --output reports/abstain/card.md 
python -m training.model_card --model_dir models/deepfake-detector-clip-cnn-fused --generalization reports/abstain/card.md \
    --benchmark benchmarks/cpu-clip-cnn-fused.json --load benchmarks/load-1client-clip-cnn-fused.json --output model_card.md
