"""Real files with provenance for the tests: C2PA manifests signed with c2pa-python's own Builder and a test
certificate chain made on the fly (cryptography), XMP packets, PNG text chunks of each generator tool, camera EXIF,
and hostile containers. Nothing here touches the network."""

from __future__ import annotations

import datetime
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin
from PIL.TiffImagePlugin import IFDRational

FACE_PHOTO = Path(__file__).resolve().parent.parent / "examples" / "astronaut.jpg"  # one face, 512 px
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@dataclass
class Chain:
    chain_pem: str  # leaf + root, as C2PA signers send them
    key_pem: str
    root_pem: str  # the trust anchor


def make_chain(organisation: str = "OpenAI Test", valid_for: datetime.timedelta = datetime.timedelta(days=30)) -> Chain:
    """A root CA and an ES256 claim-signing leaf valid from yesterday for `valid_for`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])

    def usage(signing: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=signing, content_commitment=False, key_encipherment=False, data_encipherment=False,
                             key_agreement=False, key_cert_sign=not signing, crl_sign=not signing, encipher_only=False, decipher_only=False)

    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder().subject_name(name("Test Root CA")).issuer_name(name("Test Root CA"))
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2)).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder().subject_name(name("Test Claim Signer")).issuer_name(root.subject)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(signing=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = lambda cert: cert.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    key = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return Chain(pem(leaf) + pem(root), key, pem(root))


def face_bytes(format: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.open(FACE_PHOTO).convert("RGB").save(buffer, format)
    return buffer.getvalue()


def sign(image: bytes, mime: str, chain: Chain, source_type: str = "trainedAlgorithmicMedia", generator: str = "TestGen") -> bytes:
    """`image` with a C2PA manifest (one c2pa.created action with `source_type`) signed by `chain`."""
    import c2pa

    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "test image",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": IPTC + source_type}]}}],
    }
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain.chain_pem.encode(), chain.key_pem.encode(), None))
    output = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, mime, io.BytesIO(image), output)
    return output.getvalue()


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment before the scan of a JPEG."""
    segments, position = [], 2
    while data[position] == 0xFF and data[position + 1] not in (0xDA, 0xD9):
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        segments.append((data[position + 1], position, position + 2 + length))
        position += 2 + length
    return segments


def with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """A JPEG with one more segment right after SOI."""
    return jpeg[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def xmp_packet(source_type: str, form: str = "attribute", padding: int = 0) -> bytes:
    value = IPTC + source_type
    if form == "attribute":
        body = f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" Iptc4xmpExt:DigitalSourceType="{value}"/>'
    else:
        body = (f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
                f"<Iptc4xmpExt:DigitalSourceType>{value}</Iptc4xmpExt:DigitalSourceType></rdf:Description>")
    return (f'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            f'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">{" " * padding}{body}</rdf:RDF></x:xmpmeta>'
            '<?xpacket end="w"?>').encode()


def xmp_jpeg(source_type: str, form: str = "attribute") -> bytes:
    return with_segment(face_bytes(), 0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp_packet(source_type, form))


def png_with_text(chunks: list[tuple[str, str, str]]) -> bytes:
    """The face photo as PNG with text chunks (kind tEXt / zTXt / iTXt, key, value), in order."""
    info = PngImagePlugin.PngInfo()
    for kind, key, value in chunks:
        if kind == "iTXt":
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value, zip=kind == "zTXt")
    buffer = io.BytesIO()
    Image.open(FACE_PHOTO).convert("RGB").save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def camera_jpeg(make: str = "Canon", model: str = "Canon EOS 5D Mark IV", software: str | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    if software:
        exif[0x0131] = software
    details = exif.get_ifd(0x8769)
    details[0x829A], details[0x829D], details[0x8827] = IFDRational(1, 250), IFDRational(28, 10), 400
    buffer = io.BytesIO()
    Image.open(FACE_PHOTO).convert("RGB").save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


# ---------------------------------------------------------------- hostile containers


def box(kind: bytes, content: bytes) -> bytes:
    return struct.pack(">I", 8 + len(content)) + kind + content


def jumbf_store(payload: bytes) -> bytes:
    """A JUMBF superbox labelled like a C2PA store, with one content box."""
    description = box(b"jumd", bytes.fromhex("6332706100110010800000aa00389b71") + b"\x03c2pa\x00")
    return box(b"jumb", description + box(b"json", payload))


def nested_jumbf(depth: int) -> bytes:
    inner = box(b"json", b"{}")
    description = box(b"jumd", bytes(16) + b"\x03x\x00")
    for _ in range(depth):
        inner = box(b"jumb", description + inner)
    return inner


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_with_chunks(chunks: list[bytes]) -> bytes:
    """The face photo as PNG with extra raw chunks inserted right after IHDR."""
    png = face_bytes("PNG")
    after_ihdr = 8 + 8 + 13 + 4
    return png[:after_ihdr] + b"".join(chunks) + png[after_ihdr:]


def jpeg_with_app11(jumbf: bytes, segment: int = 65_000) -> bytes:
    """The face photo with `jumbf` split into APP11 segments as ISO 19566-5 does (each repeats the box header)."""
    header, body = jumbf[:8], jumbf[8:]
    pieces = [body[i : i + segment] for i in range(0, len(body), segment)] or [b""]
    jpeg = face_bytes()
    segments = b""
    for sequence, piece in enumerate(pieces, start=1):
        payload = b"JP" + struct.pack(">HI", 1, sequence) + header + piece
        segments += b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segments + jpeg[2:]


def truncate_manifest(signed_jpeg: bytes) -> bytes:
    """A signed JPEG whose first APP11 (manifest) segment is cut to half, the image itself intact."""
    for marker, start, end in jpeg_segments(signed_jpeg):
        if marker == 0xEB:
            payload = signed_jpeg[start + 4 : end]
            half = payload[: len(payload) // 2]
            return signed_jpeg[:start] + b"\xff\xeb" + struct.pack(">H", len(half) + 2) + half + signed_jpeg[end:]
    raise ValueError("no APP11 segment")
