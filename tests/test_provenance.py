"""What the file says about itself (deepfake_detector.provenance) on real files: C2PA manifests signed here with the
library's own Builder (valid, trusted, tampered, expired, untrusted), IPTC XMP, each generator's PNG text chunks, camera
EXIF, files with none, and hostile containers, each answered within a second with the pixel verdict still given."""

from __future__ import annotations

import datetime
import json
import time

import pytest

pytest.importorskip("c2pa")

import provenance_files as files  # noqa: E402

from deepfake_detector.provenance import (  # noqa: E402
    AI_SOURCE_TYPES,
    DECLARED_FAKE,
    NO_PROVENANCE,
    OTHER_SOURCE_TYPES,
    verdict_with_provenance,
    read_provenance,
)

MIMES = {"JPEG": "image/jpeg", "PNG": "image/png"}


@pytest.fixture(scope="module")
def chain() -> files.Chain:
    return files.make_chain()


@pytest.fixture(scope="module")
def detector(model_dir):
    from deepfake_detector.model import load_detector

    return load_detector(model_dir)


def timed(data: bytes, **kwargs):
    start = time.perf_counter()
    provenance = read_provenance(data, **kwargs)
    return provenance, time.perf_counter() - start


# ---------------------------------------------------------------- none


@pytest.mark.parametrize("format", ["JPEG", "PNG", "GIF", "WEBP", "BMP"])
def test_a_file_without_metadata_says_absence_proves_nothing(format):
    """No provenance: the one neutral line, nothing declared, the pixel verdict unchanged."""
    provenance = read_provenance(files.face_bytes(format))
    assert provenance.c2pa.state == "absent" and provenance.summary == NO_PROVENANCE
    assert provenance.declared_verdict is None and verdict_with_provenance("Real", provenance) == "Real"


# ---------------------------------------------------------------- Content Credentials


@pytest.mark.parametrize("format", ["JPEG", "PNG"])
def test_signed_by_a_signer_on_no_trust_list_is_shown_but_changes_nothing(chain, format):
    """A valid signature whose signer is on no local trust list: said as unverified; anyone can make such a cert."""
    provenance = read_provenance(files.sign(files.face_bytes(format), MIMES[format], chain))
    assert provenance.c2pa.state == "valid"
    assert provenance.c2pa.signer == "OpenAI Test" and provenance.c2pa.claim_generator == "TestGen 1.0"
    assert provenance.c2pa.digital_source_type == "trainedAlgorithmicMedia" and provenance.c2pa.actions == ["c2pa.created"]
    assert "signer not on a trust list" in provenance.summary
    assert provenance.declared_verdict is None and verdict_with_provenance("Real", provenance) == "Real"


@pytest.mark.parametrize("format", ["JPEG", "PNG"])
def test_trusted_declaration_of_ai_generation_makes_the_photo_fake(chain, format):
    """Valid signature + signer on the local trust list + trainedAlgorithmicMedia: "Fake — declared by the file"."""
    provenance = read_provenance(files.sign(files.face_bytes(format), MIMES[format], chain), trust_anchors=chain.root_pem)
    assert provenance.c2pa.state == "trusted"
    assert provenance.summary == "Content Credentials signed by OpenAI Test: created with an AI model"
    assert provenance.declared_verdict == "Fake" and verdict_with_provenance("Real", provenance) == DECLARED_FAKE


@pytest.mark.parametrize(
    "source_type, declares",
    [("compositeWithTrainedAlgorithmicMedia", True), ("digitalCapture", False), ("algorithmicMedia", False)],
)
def test_only_ai_source_types_change_the_verdict(chain, source_type, declares):
    """AI editing counts like AI generation; a signed camera capture does not make a photo "Real"."""
    provenance = read_provenance(files.sign(files.face_bytes(), "image/jpeg", chain, source_type), trust_anchors=chain.root_pem)
    assert provenance.c2pa.state == "trusted" and provenance.c2pa.digital_source_type == source_type
    assert verdict_with_provenance("Uncertain", provenance) == (DECLARED_FAKE if declares else "Uncertain")
    assert (AI_SOURCE_TYPES | OTHER_SOURCE_TYPES)[source_type] in provenance.summary


def test_changed_after_signing_is_an_invalid_signature(chain):
    """Tampered pixels: the signature is said to be invalid, and even a trusted signer's claim changes nothing."""
    signed = bytearray(files.sign(files.face_bytes(), "image/jpeg", chain))
    signed[-200] ^= 0xFF  # inside the entropy-coded image data
    provenance = read_provenance(bytes(signed), trust_anchors=chain.root_pem)
    assert provenance.c2pa.state == "invalid" and provenance.c2pa.problem == "the image was changed after signing"
    assert "INVALID signature" in provenance.summary and verdict_with_provenance("Real", provenance) == "Real"


def test_expired_signing_certificate_is_invalid():
    """A certificate that expired after signing (no timestamp): invalid, said as expired."""
    short_lived = files.make_chain(valid_for=datetime.timedelta(seconds=2))
    signed = files.sign(files.face_bytes(), "image/jpeg", short_lived)
    time.sleep(3)
    provenance = read_provenance(signed, trust_anchors=short_lived.root_pem)
    assert provenance.c2pa.state == "invalid" and provenance.c2pa.problem == "the signing certificate had expired"
    assert provenance.declared_verdict is None


def test_a_trust_list_of_another_ca_does_not_trust_the_signer(chain):
    provenance = read_provenance(files.sign(files.face_bytes(), "image/jpeg", chain), trust_anchors=files.make_chain().root_pem)
    assert provenance.c2pa.state == "valid" and provenance.declared_verdict is None


# ---------------------------------------------------------------- unsigned metadata


@pytest.mark.parametrize("form", ["attribute", "element"])
@pytest.mark.parametrize("source_type", sorted(AI_SOURCE_TYPES | OTHER_SOURCE_TYPES))
def test_iptc_digital_source_type_from_xmp_is_shown_never_used(source_type, form):
    """Each IPTC term is read from an XMP packet; unsigned, so it never changes the verdict."""
    provenance = read_provenance(files.xmp_jpeg(source_type, form))
    assert provenance.iptc_digital_source_type == source_type and provenance.c2pa.state == "absent"
    assert "IPTC metadata (unsigned)" in provenance.summary
    assert verdict_with_provenance("Real", provenance) == "Real"


PROMPT = "a photo of a smiling woman, 85mm, golden hour, highly detailed, " * 5
PNG_TOOLS = {
    "AUTOMATIC1111": ([("tEXt", "parameters", PROMPT + "\nNegative prompt: blurry\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1, Model: sd_xl_base_1.0, Version: v1.9.4")],
                      "Stable Diffusion (AUTOMATIC1111/Forge)", "sd_xl_base_1.0"),
    "Forge": ([("iTXt", "parameters", PROMPT + "\nSteps: 20, Sampler: Euler, Model: flux1-dev, Version: f2.0.1")],
              "Stable Diffusion (AUTOMATIC1111/Forge)", "flux1-dev"),
    "ComfyUI": ([("tEXt", "prompt", json.dumps({"3": {"class_type": "KSampler", "inputs": {"text": PROMPT}}})),
                 ("tEXt", "workflow", json.dumps({"nodes": [{"type": "CLIPTextEncode", "widgets_values": [PROMPT]}]}))], "ComfyUI", None),
    "InvokeAI": ([("iTXt", "invokeai_metadata", json.dumps({"positive_prompt": PROMPT, "model": {"name": "juggernaut"}}))], "InvokeAI", None),
    "NovelAI": ([("tEXt", "Title", "AI generated image"), ("tEXt", "Description", PROMPT), ("tEXt", "Software", "NovelAI"),
                 ("tEXt", "Source", "Stable Diffusion XL C1E1DE52"), ("zTXt", "Comment", json.dumps({"prompt": PROMPT, "steps": 28}))], "NovelAI", None),
}


@pytest.mark.parametrize("tool", sorted(PNG_TOOLS))
def test_png_text_chunks_name_their_tool_but_never_echo_the_prompt(tool):
    chunks, name, model = PNG_TOOLS[tool]
    provenance = read_provenance(files.png_with_text(chunks))
    assert provenance.generator == name and provenance.generator_source == "PNG text chunks"
    assert provenance.generator_model == model
    assert set(provenance.generator_keys) <= {key for _, key, _ in chunks}
    assert "smiling woman" not in json.dumps(provenance.to_json())  # keys and tool only, never the prompt
    assert f"The file names its generator: {name}" in provenance.summary and verdict_with_provenance("Real", provenance) == "Real"


def test_exif_software_naming_a_generator_and_camera_hint():
    provenance = read_provenance(files.camera_jpeg(make="", model="", software="Midjourney v6"))
    assert provenance.generator == "Midjourney v6" and provenance.generator_source == "EXIF Software" and provenance.camera is None


def test_camera_exif_is_a_hint_only():
    """Make, model and exposure are shown as an easily forged hint and prove nothing either way."""
    provenance = read_provenance(files.camera_jpeg())
    assert provenance.camera == "Canon Canon EOS 5D Mark IV, 1/250 s, f/2.8, ISO 400"
    assert "easily forged" in provenance.summary and provenance.declared_verdict is None


def test_plain_camera_software_is_not_a_generator():
    assert read_provenance(files.camera_jpeg(software="Adobe Photoshop Lightroom 6.0")).generator is None


# ---------------------------------------------------------------- predict()-level and scan


def test_predict_keeps_its_pixel_verdict_beside_a_trusted_declaration(chain, detector):
    """The rule end to end on the same bytes: predict() decides the pixels, verdict_with_provenance adds the declaration."""
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.predict import predict

    plain = files.face_bytes()
    signed = files.sign(plain, "image/jpeg", chain)
    pixel = predict(load_rgb_array(plain), detector).verdict
    assert predict(load_rgb_array(signed), detector).verdict == pixel  # the manifest does not touch the pixels
    assert verdict_with_provenance(pixel, read_provenance(signed, trust_anchors=chain.root_pem)) == DECLARED_FAKE
    assert verdict_with_provenance(pixel, read_provenance(signed)) == pixel  # signer on no trust list
    assert verdict_with_provenance(pixel, read_provenance(plain)) == pixel


def test_scan_rows_carry_the_provenance_columns(chain, detector, tmp_path, monkeypatch):
    from deepfake_detector import provenance as module
    from deepfake_detector.scan import COLUMNS, scan_file

    (tmp_path / "root.pem").write_text(chain.root_pem)
    monkeypatch.setenv("C2PA_TRUST_ANCHORS", str(tmp_path / "root.pem"))
    monkeypatch.setattr(module, "_TRUST", {})  # the trust list is read once per process
    signed, plain, comfy = tmp_path / "signed.jpg", tmp_path / "plain.png", tmp_path / "comfy.png"
    signed.write_bytes(files.sign(files.face_bytes(), "image/jpeg", chain))
    plain.write_bytes(files.face_bytes("PNG"))
    comfy.write_bytes(files.png_with_text(PNG_TOOLS["ComfyUI"][0]))
    row = scan_file(str(signed), detector, None)[0]
    assert set(row) == set(COLUMNS)
    assert (row["declared_verdict"], row["c2pa"], row["c2pa_signer"], row["c2pa_source_type"]) == ("Fake", "trusted", "OpenAI Test", "trainedAlgorithmicMedia")
    assert verdict_with_provenance(row["image_verdict"], module.read_provenance(signed.read_bytes())) == DECLARED_FAKE
    row = scan_file(str(plain), detector, None)[0]
    assert (row["declared_verdict"], row["provenance"], row["c2pa"]) == (None, NO_PROVENANCE, "absent")
    row = scan_file(str(comfy), detector, None)[0]
    assert row["generator"] == "ComfyUI" and row["declared_verdict"] is None


# ---------------------------------------------------------------- hostile inputs: under a second, pixel verdict still given


def hostile_cases(chain: files.Chain) -> dict[str, tuple[bytes, str]]:
    """name -> (file, what the provenance must say)."""
    signed = files.sign(files.face_bytes(), "image/jpeg", chain)
    corrupted = bytearray(signed)
    for marker, start, end in files.jpeg_segments(signed):
        if marker == 0xEB:  # flip bytes in the middle of the manifest, lengths intact
            middle = (start + end) // 2
            corrupted[middle : middle + 64] = bytes(b ^ 0x5A for b in corrupted[middle : middle + 64])
            break
    return {
        "manifest far larger than the image (6 MB)": (files.jpeg_with_app11(files.jumbf_store(b"x" * 6_000_000)), "over the 4 MB limit"),
        "manifest of 3.5 MB under the cap (junk)": (files.jpeg_with_app11(files.jumbf_store(b"{" * 3_500_000)), "could not be read"),
        "deeply nested JUMBF boxes (PNG caBX)": (files.png_with_chunks([files.png_chunk(b"caBX", files.nested_jumbf(3000))]), "nested over"),
        "deeply nested JUMBF boxes (JPEG APP11)": (files.jpeg_with_app11(files.nested_jumbf(3000)), "nested over"),
        "truncated manifest": (files.truncate_manifest(signed), "truncated JUMBF box"),
        "manifest corrupted inside": (bytes(corrupted), "Content Credentials"),
        "10 MB of XMP": (files.png_with_chunks([files.png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + files.xmp_packet("trainedAlgorithmicMedia", padding=10_000_000))]), "only its first"),
        "thousands of PNG text chunks": (files.png_with_chunks([files.png_chunk(b"tEXt", f"k{i}\x00{'v' * 100}".encode()) for i in range(5000)]), NO_PROVENANCE),
        "zTXt decompression bomb": (files.png_with_chunks([files.png_chunk(b"zTXt", b"parameters\x00\x00" + __import__("zlib").compress(b"\x00" * 1_000_000, 9))]), "Stable Diffusion"),
        "a JUMBF box claiming 2 GB": (files.png_with_chunks([files.png_chunk(b"caBX", b"\x7f\xff\xff\xffjumb" + b"\x00" * 100)]), "truncated JUMBF box"),
    }


@pytest.fixture(scope="module")
def hostile(chain):
    return hostile_cases(chain)


@pytest.mark.parametrize("case", [
    "manifest far larger than the image (6 MB)", "manifest of 3.5 MB under the cap (junk)", "deeply nested JUMBF boxes (PNG caBX)",
    "deeply nested JUMBF boxes (JPEG APP11)", "truncated manifest", "manifest corrupted inside", "10 MB of XMP",
    "thousands of PNG text chunks", "zTXt decompression bomb", "a JUMBF box claiming 2 GB",
])
def test_hostile_input_is_answered_within_a_second_with_the_pixel_verdict(hostile, detector, case):
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.predict import predict

    data, expected = hostile[case]
    provenance, seconds = timed(data)
    assert seconds < 1.0, f"{case}: {seconds:.2f} s"
    text = json.dumps(provenance.to_json(), ensure_ascii=False)
    assert expected in text, text
    assert provenance.declared_verdict is None
    assert predict(load_rgb_array(data), detector).verdict in {"Real", "Fake", "Uncertain"}  # the pixels still answer


def test_concurrent_reads_keep_their_own_results(chain):
    """The app reads two uploads at once: each C2PA read has its own context, answers never mix."""
    from concurrent.futures import ThreadPoolExecutor

    signed = files.sign(files.face_bytes(), "image/jpeg", chain)
    tampered = bytearray(signed)
    tampered[-200] ^= 0xFF
    jobs = [(signed, "trusted"), (bytes(tampered), "invalid"), (files.face_bytes(), "absent")] * 40
    with ThreadPoolExecutor(4) as pool:
        states = list(pool.map(lambda job: read_provenance(job[0], trust_anchors=chain.root_pem).c2pa.state, jobs))
    assert states == [state for _, state in jobs]


def test_memory_does_not_grow_over_many_reads(chain):
    """The native library's readers are released: 300 reads of a signed file keep the process size flat."""
    from pathlib import Path

    def rss() -> int:
        return next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS:"))

    signed = files.sign(files.face_bytes(), "image/jpeg", chain)
    for _ in range(50):
        read_provenance(signed, trust_anchors=chain.root_pem)
    before = rss()
    for _ in range(300):
        read_provenance(signed, trust_anchors=chain.root_pem)
    assert rss() - before < 20_000_000


def test_an_unreadable_trust_list_is_logged_never_shown(chain, tmp_path, monkeypatch, caplog):
    """C2PA_TRUST_ANCHORS naming a missing file: every signer is 'not on a trust list'; no server path in the answer."""
    from deepfake_detector import provenance as module

    missing = tmp_path / "no-such-trust-list.pem"
    monkeypatch.setenv("C2PA_TRUST_ANCHORS", str(missing))
    monkeypatch.setattr(module, "_TRUST", {})
    provenance = read_provenance(files.sign(files.face_bytes(), "image/jpeg", chain))
    assert provenance.c2pa.state == "valid" and str(missing) not in json.dumps(provenance.to_json())
    assert "cannot be read" in caplog.text
