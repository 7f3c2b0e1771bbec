"""What a file says about itself: Content Credentials (C2PA), IPTC digital source type, generator parameters, camera EXIF.

    from deepfake_detector.provenance import read_provenance, verdict_with_provenance
    provenance = read_provenance(data)          # the upload's bytes, read once by the caller
    provenance.summary                          # one line for the page
    verdict_with_provenance(prediction.verdict, provenance)

Pixels are one witness; many generated images also say what made them. This module reads the bytes once, walks the
container (JPEG segments, PNG chunks, WebP chunks) itself, and hands a Content Credentials manifest to the official
C2PA library (`c2pa-python`) only after checking its size and JUMBF nesting. Nothing is executed, fetched or kept:
no thumbnail, no prompt, no remote manifest, no OCSP; the result is a few short strings.

How provenance changes the verdict (the same rule in the page, the API and `deepfake-detector scan`):

* Only Content Credentials whose signature is valid **and** whose signer chains to a local trust list
  (`C2PA_TRUST_ANCHORS`, a PEM file) and that declare AI generation or AI editing (IPTC `trainedAlgorithmicMedia` or
  `compositeWithTrainedAlgorithmicMedia`) make the photo "Fake — declared by the file". The pixel verdict is kept
  beside it, unchanged, and every face keeps its own pixel verdict.
* A valid signature from a signer on no trust list, an invalid one, IPTC/XMP fields, PNG generator parameters and EXIF
  are shown, never used: anyone can write them into a real photo to discredit it (or strip them from a fake).
* A signed declaration of a camera capture does not make a photo "Real": a camera can photograph a generated image.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Limits: reading is bounded in size, time and nesting whatever the file claims.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # all C2PA JUMBF bytes together; real manifests with thumbnails stay well under
MAX_JUMBF_DEPTH = 16  # a C2PA store nests about 5 superboxes deep
MAX_JUMBF_BOXES = 20_000
MAX_SEGMENTS = 20_000  # JPEG segments / PNG or WebP chunks walked before giving up
MAX_XMP_BYTES = 1024 * 1024  # XMP text searched (a real packet is a few kB to a few hundred kB)
MAX_TEXT_BYTES = 256 * 1024  # one PNG text value, decompressed at most this far
MAX_TEXT_TOTAL = 4 * 1024 * 1024  # PNG text decompressed in all
MAX_TEXT_KEYS = 32  # PNG text keys reported
WALK_SECONDS = 0.5  # the container walk stops here (pure Python, checked as it goes)
SHOWN_CHARS = 80  # any string the file provides is cut to one short line

AI_SOURCE_TYPES = {
    "trainedAlgorithmicMedia": "created with an AI model",
    "compositeWithTrainedAlgorithmicMedia": "edited with an AI model",
}
OTHER_SOURCE_TYPES = {
    "algorithmicMedia": "made by an algorithm without training data",
    "compositeSynthetic": "a composite including synthetic elements",
    "digitalCapture": "captured with a digital camera",
    "computationalCapture": "captured with computational photography",
    "negativeFilm": "scanned from a negative",
    "positiveFilm": "scanned from a slide",
    "print": "scanned from a print",
    "minorHumanEdits": "a capture with minor human edits",
    "humanEdits": "edited by a person",
    "compositeCapture": "a composite of captures",
    "algorithmicallyEnhanced": "enhanced by an algorithm",
    "screenCapture": "a screen capture",
    "dataDrivenMedia": "made from data",
    "digitalCreation": "made on a computer by a person",
    "digitalArt": "made on a computer by a person",
    "virtualRecording": "a recording of a virtual event",
    "composite": "a composite",
}
DECLARED_FAKE = "Fake — declared by the file"
NO_PROVENANCE = "No provenance data (most photos carry none; its absence proves nothing)"

# PNG text keys that name their tool (a key's presence is the evidence; values are never shown).
PNG_TOOL_KEYS = (
    ("parameters", "Stable Diffusion (AUTOMATIC1111/Forge)"),
    ("invokeai_metadata", "InvokeAI"),
    ("invokeai_graph", "InvokeAI"),
    ("sd-metadata", "InvokeAI"),
    ("dream", "InvokeAI"),
    ("workflow", "ComfyUI"),
    ("prompt", "ComfyUI"),
    ("fooocus_scheme", "Fooocus"),
)
GENERATOR_NAMES = re.compile(
    r"novelai|stable[ _-]?diffusion|automatic1111|comfyui|invokeai|fooocus|midjourney|dall[·\-_ ]?e|firefly|imagen|"
    r"chatgpt|openai|gpt-4o|flux|leonardo|ideogram|nightcafe|dreamstudio|sdxl|diffusers|gemini",
    re.IGNORECASE,
)
XMP_SOURCE_TYPE = re.compile(rb"DigitalSourceType\s*(?:=\s*[\"']|>\s*|[^>]{0,200}?rdf:resource\s*=\s*[\"'])\s*([^\"'<\s]{1,300})")
XMP_CREATOR_TOOL = re.compile(rb"CreatorTool\s*(?:=\s*[\"']([^\"'<]{1,200})|>\s*([^<]{1,200})<)")


@dataclass
class C2paInfo:
    state: str = "absent"  # absent | trusted | valid (signer on no trust list) | invalid | unreadable
    problem: str | None = None  # why invalid or unreadable, in words
    signer: str | None = None  # the certificate's organisation (issuer field of c2pa's signature_info)
    claim_generator: str | None = None
    digital_source_type: str | None = None  # the IPTC term's last part, e.g. trainedAlgorithmicMedia
    actions: list[str] = field(default_factory=list)


@dataclass
class Provenance:
    c2pa: C2paInfo = field(default_factory=C2paInfo)
    iptc_digital_source_type: str | None = None  # from XMP (unsigned)
    generator: str | None = None  # the tool named by unsigned metadata, e.g. "ComfyUI"
    generator_source: str | None = None  # where: "PNG text chunks", "EXIF Software", "XMP CreatorTool"
    generator_keys: list[str] = field(default_factory=list)  # PNG text keys found (never their values)
    generator_model: str | None = None  # A1111's "Model:" field, one short line
    camera: str | None = None  # EXIF make / model / exposure: a hint, trivially forged
    unreadable: list[str] = field(default_factory=list)  # parts that could not be read, in words

    @property
    def declares_ai(self) -> bool:
        """A trusted, valid manifest declares AI generation or AI editing: the one case that changes the verdict."""
        return self.c2pa.state == "trusted" and self.c2pa.digital_source_type in AI_SOURCE_TYPES

    @property
    def declared_verdict(self) -> str | None:
        return "Fake" if self.declares_ai else None

    @property
    def summary(self) -> str:
        return summary_line(self)

    def to_json(self) -> dict:
        result = asdict(self)
        result["summary"] = self.summary
        result["declared_verdict"] = self.declared_verdict
        return result


def verdict_with_provenance(pixel_verdict: str, provenance: Provenance | None) -> str:
    """The photo's verdict: "Fake — declared by the file" for a trusted AI declaration, else the pixel verdict."""
    return DECLARED_FAKE if provenance is not None and provenance.declares_ai else pixel_verdict


# ---------------------------------------------------------------- the one line the page shows


def _describe_source(term: str | None) -> str | None:
    if term is None:
        return None
    return AI_SOURCE_TYPES.get(term) or OTHER_SOURCE_TYPES.get(term) or f"source type {term}"


def summary_line(provenance: Provenance) -> str:
    c2pa = provenance.c2pa
    parts = []
    if c2pa.state != "absent":
        signer = f" signed by {c2pa.signer}" if c2pa.signer else ""
        said = _describe_source(c2pa.digital_source_type)
        said = f": {said}" if said else (f": made with {c2pa.claim_generator}" if c2pa.claim_generator else "")
        if c2pa.state == "trusted":
            parts.append(f"Content Credentials{signer}{said}")
        elif c2pa.state == "valid":
            parts.append(f"Content Credentials{signer} (signer not on a trust list, so unverified){said}")
        elif c2pa.state == "invalid":
            parts.append(f"Content Credentials{signer} with an INVALID signature ({c2pa.problem}); what they say cannot be trusted")
        else:
            parts.append(f"Content Credentials could not be read ({c2pa.problem})")
    if provenance.iptc_digital_source_type and provenance.iptc_digital_source_type != c2pa.digital_source_type:
        parts.append(f"The file's IPTC metadata (unsigned) says: {_describe_source(provenance.iptc_digital_source_type)}")
    if provenance.generator:
        model = f", model {provenance.generator_model}" if provenance.generator_model else ""
        parts.append(f"The file names its generator: {provenance.generator} ({provenance.generator_source}{model}; unsigned)")
    if provenance.camera:
        parts.append(f"Camera EXIF (unsigned, easily forged): {provenance.camera}")
    if not parts:
        if provenance.unreadable:
            return f"Metadata could not be read ({provenance.unreadable[0]}); no provenance shown"
        return NO_PROVENANCE
    return ". ".join(parts)


# ---------------------------------------------------------------- reading


def _short(value, limit: int = SHOWN_CHARS) -> str | None:
    """One printable line of at most `limit` characters from a value the file provides."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in str(value)[: limit * 4])
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text or None


def source_type_term(uri) -> str | None:
    """The last part of an IPTC / C2PA digital source type URI, e.g. "trainedAlgorithmicMedia"."""
    text = _short(uri, 300)
    if not text:
        return None
    term = text.rstrip("/").rsplit("/", 1)[-1]
    return term if re.fullmatch(r"[A-Za-z]{1,60}", term) else None


@dataclass
class _Parts:
    """What the container walk found: raw pieces, each bounded."""

    mime: str | None = None
    jumbf: list[bytes] = field(default_factory=list)
    jumbf_bytes: int = 0
    xmp: list[bytes] = field(default_factory=list)
    exif: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)  # PNG text key -> value (bounded)
    text_total: int = 0
    problems: list[str] = field(default_factory=list)


class _Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() > self.end


def read_provenance(data: bytes, trust_anchors: str | None = None) -> Provenance:
    """Provenance of an image's bytes. Never raises on hostile input: unreadable parts are named in the result.

    `trust_anchors` (PEM text) overrides the app's local trust list (`C2PA_TRUST_ANCHORS`) for this call.
    """
    provenance = Provenance()
    try:
        parts = _walk(bytes(data))
    except Exception as error:  # noqa: BLE001 - a parser bug on a hostile file must not cost the pixel verdict
        provenance.unreadable.append(f"the container could not be walked: {type(error).__name__}")
        return provenance
    provenance.unreadable.extend(parts.problems)
    for name, read in (("C2PA", lambda: _read_c2pa(data, parts, trust_anchors, provenance)), ("XMP", lambda: _read_xmp(parts, provenance)),
                       ("PNG text", lambda: _read_text(parts, provenance)), ("EXIF", lambda: _read_exif(parts.exif, provenance))):
        try:
            read()
        except Exception as error:  # noqa: BLE001 - one unreadable part never costs the others or the pixel verdict
            provenance.unreadable.append(f"the {name} part could not be read: {type(error).__name__}")
    return provenance


# ---------------------------------------------------------------- container walks


def _walk(data: bytes) -> _Parts:
    deadline = _Deadline(WALK_SECONDS)
    if data[:3] == b"\xff\xd8\xff":
        return _walk_jpeg(data, deadline)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _walk_png(data, deadline)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _walk_webp(data, deadline)
    return _Parts()  # GIF, BMP and anything else: no metadata this reader knows


def _add_jumbf(parts: _Parts, piece: bytes) -> None:
    parts.jumbf_bytes += len(piece)
    if parts.jumbf_bytes <= MAX_MANIFEST_BYTES:
        parts.jumbf.append(piece)


def _walk_jpeg(data: bytes, deadline: _Deadline) -> _Parts:
    parts = _Parts(mime="image/jpeg")
    app11: dict[int, list[tuple[int, bytes]]] = {}
    position, count = 2, 0
    while position + 4 <= len(data):
        count += 1
        if count > MAX_SEGMENTS or deadline.passed():
            parts.problems.append("too many JPEG segments")
            break
        if data[position] != 0xFF:
            break
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: metadata comes before
            break
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        payload = data[position + 4 : position + 2 + length]
        position += 2 + length
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00") and parts.exif is None:
            parts.exif = payload[6:]
        elif marker == 0xE1 and payload.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
            parts.xmp.append(payload[29:])
        elif marker == 0xE1 and payload.startswith(b"http://ns.adobe.com/xmp/extension/\x00"):
            parts.xmp.append(payload[35 + 40 :])  # GUID (32) + full length (4) + offset (4)
        elif marker == 0xEB and payload[:2] == b"JP" and len(payload) >= 16:
            instance, sequence = struct.unpack(">HI", payload[2:8])
            parts.jumbf_bytes += len(payload)
            if parts.jumbf_bytes <= MAX_MANIFEST_BYTES:
                app11.setdefault(instance, []).append((sequence, payload[8:]))
    for pieces in app11.values():  # ISO 19566-5: each continuation repeats the box header (LBox, TBox[, XLBox])
        pieces.sort(key=lambda piece: piece[0])
        box = bytearray(pieces[0][1])
        for _, piece in pieces[1:]:
            skip = 16 if piece[:4] == b"\x00\x00\x00\x01" else 8
            box += piece[skip:]
        parts.jumbf.append(bytes(box))
    return parts


def _walk_png(data: bytes, deadline: _Deadline) -> _Parts:
    parts = _Parts(mime="image/png")
    position, count = 8, 0
    while position + 8 <= len(data):
        count += 1
        if count > MAX_SEGMENTS or deadline.passed():
            parts.problems.append("too many PNG chunks; the rest was not read")
            break
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IEND":
            break
        if kind == b"caBX":
            _add_jumbf(parts, body)
        elif kind == b"eXIf" and parts.exif is None:
            parts.exif = body
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            _png_text(parts, kind, body)
    return parts


def _walk_webp(data: bytes, deadline: _Deadline) -> _Parts:
    parts = _Parts(mime="image/webp")
    position, count = 12, 0
    while position + 8 <= len(data):
        count += 1
        if count > MAX_SEGMENTS or deadline.passed():
            parts.problems.append("too many WebP chunks")
            break
        kind, length = struct.unpack("<4sI", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        position += 8 + length + (length & 1)
        if kind == b"C2PA":
            _add_jumbf(parts, body)
        elif kind == b"EXIF" and parts.exif is None:
            parts.exif = body[6:] if body.startswith(b"Exif\x00\x00") else body
        elif kind == b"XMP ":
            parts.xmp.append(body)
    return parts


def _inflate(compressed: bytes, parts: _Parts, limit: int = MAX_TEXT_BYTES) -> bytes | None:
    budget = min(limit, MAX_TEXT_TOTAL - parts.text_total)
    if budget <= 0:
        return None
    try:
        return zlib.decompressobj().decompress(compressed, budget)  # never more than `budget` bytes: no zip bomb
    except zlib.error:
        parts.problems.append("a compressed PNG text chunk is damaged")
        return None


def _png_text(parts: _Parts, kind: bytes, body: bytes) -> None:
    keyword, _, rest = body.partition(b"\x00")
    key = keyword[:79].decode("latin-1", "replace")
    limit = MAX_XMP_BYTES + 1 if key == "XML:com.adobe.xmp" else MAX_TEXT_BYTES  # one byte more tells "too large"
    if kind == b"tEXt":
        value = rest[:limit]
    elif kind == b"zTXt":
        value = _inflate(rest[1:], parts, limit)
    else:  # iTXt: compression flag, method, language\0, translated keyword\0, text
        if len(rest) < 2:
            return
        compressed, rest = rest[0], rest[2:]
        rest = rest.split(b"\x00", 2)[-1] if rest.count(b"\x00") >= 2 else b""
        value = _inflate(rest, parts, limit) if compressed else rest[:limit]
    if value is None:
        return
    if key == "XML:com.adobe.xmp":
        parts.xmp.append(value)
        return
    parts.text_total += len(value)
    if key not in parts.text and len(parts.text) < MAX_TEXT_KEYS:
        parts.text[key] = value.decode("utf-8", "replace")


# ---------------------------------------------------------------- C2PA


def _jumbf_problem(box: bytes) -> str | None:
    """Why a JUMBF superbox must not reach the library (too deep, too many boxes, lengths past the end), else None."""
    stack = [(0, len(box), 1)]
    boxes = 0
    while stack:
        start, end, depth = stack.pop()
        position = start
        while position + 8 <= end:
            boxes += 1
            if boxes > MAX_JUMBF_BOXES:
                return "too many JUMBF boxes"
            size, kind = struct.unpack(">I4s", box[position : position + 8])
            header = 8
            if size == 1:
                if position + 16 > end:
                    return "a truncated JUMBF box"
                (size,) = struct.unpack(">Q", box[position + 8 : position + 16])
                header = 16
            elif size == 0:
                size = end - position
            if size < header or position + size > end:
                return "a truncated JUMBF box"
            if kind == b"jumb":
                if depth >= MAX_JUMBF_DEPTH:
                    return f"JUMBF boxes nested over {MAX_JUMBF_DEPTH} deep"
                stack.append((position + header, position + size, depth + 1))
            position += size
    return None


_TRUST_LOCK = threading.Lock()
_TRUST: dict[str, str | None] = {}


def local_trust_anchors() -> str | None:
    """PEM text of the local trust list named by C2PA_TRUST_ANCHORS (read once), or None: nothing is fetched."""
    with _TRUST_LOCK:
        if "pem" not in _TRUST:
            path = os.environ.get("C2PA_TRUST_ANCHORS")
            try:
                _TRUST["pem"] = Path(path).read_text(encoding="utf-8") if path else None
            except (OSError, UnicodeDecodeError) as error:  # the operator's mistake: logged, never shown to a visitor
                log.error("C2PA_TRUST_ANCHORS=%s cannot be read (%s); every signer is 'not on a trust list'", path, error)
                _TRUST["pem"] = None
        return _TRUST["pem"]


def _c2pa_settings(trust_anchors: str | None) -> dict:
    settings = {
        # Offline: no remote manifest, no OCSP, no host allowed; the size cap below applies to decompression too.
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True},
        "core": {"allowed_network_hosts": [], "max_decompressed_manifest_size_in_mb": MAX_MANIFEST_BYTES // (1024 * 1024)},
    }
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
    return settings


FAILURE_WORDS = (
    ("dataHash.mismatch", "the image was changed after signing"),
    ("boxesHash.mismatch", "the image was changed after signing"),
    ("hashedURI.mismatch", "the manifest was changed after signing"),
    ("signingCredential.expired", "the signing certificate had expired"),
    ("signingCredential.revoked", "the signing certificate was revoked"),
    ("claimSignature.mismatch", "the signature does not match"),
    ("claimSignature.outsideValidity", "signed outside the certificate's validity"),
    ("signingCredential.invalid", "the signing certificate is not valid"),
)


def _read_c2pa(data: bytes, parts: _Parts, trust_anchors: str | None, provenance: Provenance) -> None:
    if parts.jumbf:
        provenance.c2pa = _c2pa_info(data, parts, trust_anchors)


def _c2pa_info(data: bytes, parts: _Parts, trust_anchors: str | None) -> C2paInfo:
    if parts.jumbf_bytes > MAX_MANIFEST_BYTES:
        return C2paInfo(state="unreadable", problem=f"manifest of {parts.jumbf_bytes / 1e6:.1f} MB, over the {MAX_MANIFEST_BYTES / 1e6:.0f} MB limit")
    for box in parts.jumbf:
        problem = _jumbf_problem(box)
        if problem:
            return C2paInfo(state="unreadable", problem=problem)
    try:
        import c2pa
    except ImportError:
        return C2paInfo(state="unreadable", problem="the C2PA library is not installed")
    try:
        context = c2pa.Context.from_dict(_c2pa_settings(trust_anchors or local_trust_anchors()))
        with c2pa.Reader(parts.mime, io.BytesIO(data), None, context) as reader:
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
            manifest = reader.get_active_manifest() or {}
    except Exception as error:  # noqa: BLE001 - C2paError of every kind, and anything a hostile manifest provokes
        return C2paInfo(state="unreadable", problem=_short(str(error).partition("\n")[0], 120) or type(error).__name__)
    info = C2paInfo()
    signature = manifest.get("signature_info") or {}
    info.signer = _short(signature.get("issuer") or signature.get("common_name"))
    generators = manifest.get("claim_generator_info") or []
    if generators and isinstance(generators[0], dict):
        info.claim_generator = _short(" ".join(str(generators[0].get(k, "")) for k in ("name", "version")))
    elif manifest.get("claim_generator"):
        info.claim_generator = _short(manifest.get("claim_generator"))
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(action, dict):
                continue
            if len(info.actions) < 16:
                info.actions.append(_short(action.get("action"), 60) or "?")
            term = source_type_term(action.get("digitalSourceType"))
            if term and (info.digital_source_type is None or term in AI_SOURCE_TYPES):
                info.digital_source_type = term
    failures = [f.get("code", "") for f in ((results.get("activeManifest") or {}).get("failure") or []) if isinstance(f, dict)]
    if str(state).lower() == "trusted":
        info.state = "trusted"
    elif str(state).lower() == "valid":
        info.state = "valid"
    else:
        info.state = "invalid"
        reasons = [words for code, words in FAILURE_WORDS if any(code in failure for failure in failures)]
        other = [f for f in failures if f != "signingCredential.untrusted"]
        info.problem = reasons[0] if reasons else (_short(other[0], 60) if other else "validation failed")
    return info


# ---------------------------------------------------------------- unsigned metadata


def _read_xmp(parts: _Parts, provenance: Provenance) -> None:
    if not parts.xmp:
        return
    text = b"".join(parts.xmp)
    if len(text) > MAX_XMP_BYTES:
        provenance.unreadable.append(f"XMP over {MAX_XMP_BYTES // 1024} kB; only its first {MAX_XMP_BYTES // 1024} kB was read")
        text = text[:MAX_XMP_BYTES]
    match = XMP_SOURCE_TYPE.search(text)
    if match:
        provenance.iptc_digital_source_type = source_type_term(match.group(1))
    tool = XMP_CREATOR_TOOL.search(text)
    if tool and provenance.generator is None:
        name = _short(tool.group(1) or tool.group(2))
        if name and GENERATOR_NAMES.search(name):
            provenance.generator, provenance.generator_source = name, "XMP CreatorTool"


def _read_text(parts: _Parts, provenance: Provenance) -> None:
    if not parts.text:
        return
    keys = {key.lower(): key for key in parts.text}
    tool = None
    for key, name in PNG_TOOL_KEYS:
        if key in keys:
            tool = name
            break
    software = parts.text.get(keys.get("software", ""), "")
    if "novelai" in software.lower():
        tool = "NovelAI"
    elif tool is None and GENERATOR_NAMES.search(software or ""):
        tool = _short(software)
    if tool is None:
        return
    if tool.startswith("Stable Diffusion") and "fooocus" in parts.text[keys["parameters"]].lower():
        tool = "Fooocus"
    provenance.generator, provenance.generator_source = tool, "PNG text chunks"
    known = {key for key, _ in PNG_TOOL_KEYS} | {"software", "comment", "source", "description", "title", "generation time"}
    provenance.generator_keys = sorted(key for key in parts.text if key.lower() in known)
    if "parameters" in keys:
        model = re.search(r"(?:^|[,\n]\s*)Model:\s*([^,\n]{1,100})", parts.text[keys["parameters"]])
        provenance.generator_model = _short(model.group(1), 60) if model else None


EXIF_MAKE, EXIF_MODEL, EXIF_SOFTWARE, EXIF_IFD = 0x010F, 0x0110, 0x0131, 0x8769
EXIF_EXPOSURE, EXIF_FNUMBER, EXIF_ISO = 0x829A, 0x829D, 0x8827


def _read_exif(exif_bytes: bytes | None, provenance: Provenance) -> None:
    if not exif_bytes:
        return
    from PIL import Image

    try:
        exif = Image.Exif()
        exif.load(exif_bytes[: 256 * 1024])
        details = exif.get_ifd(EXIF_IFD)
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on a damaged TIFF structure
        provenance.unreadable.append("the EXIF block is damaged")
        return
    software = _short(exif.get(EXIF_SOFTWARE))
    if software and provenance.generator is None and GENERATOR_NAMES.search(software):
        provenance.generator, provenance.generator_source = software, "EXIF Software"
    camera = " ".join(filter(None, (_short(exif.get(EXIF_MAKE), 40), _short(exif.get(EXIF_MODEL), 40))))
    if not camera:
        return
    exposure = []
    try:
        if details.get(EXIF_EXPOSURE):
            seconds = float(details[EXIF_EXPOSURE])
            exposure.append(f"1/{round(1 / seconds)} s" if 0 < seconds < 1 else f"{seconds:g} s")
        if details.get(EXIF_FNUMBER):
            exposure.append(f"f/{float(details[EXIF_FNUMBER]):g}")
        if details.get(EXIF_ISO):
            exposure.append(f"ISO {int(details[EXIF_ISO] if not isinstance(details[EXIF_ISO], tuple) else details[EXIF_ISO][0])}")
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        pass
    provenance.camera = _short(", ".join([camera, *exposure]), 120)
