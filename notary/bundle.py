"""Proof bundles: write them from plain data, read them back from untrusted bytes.

FROZEN FORMAT "notary-bundle", version "1.0" (documented in docs/bundle-format.md). A
bundle is a zip (deflate) or an unpacked directory holding::

    manifest.json               run, tree, items with their metadata records, tokens
    VERIFY.md                   a short guide for people, with the openssl command
    timestamps/<tsa>-<k>.tsr    each TimeStampResp exactly as the TSA sent it
    certs/<tsa>.pem             that TSA's certificates (from its tokens + configured)
    items/NNNNNN.json           per-item proof ("notary-proof" version 1)
    items/NNNNNN.ers            per-item RFC 4998 EvidenceRecord (see notary.ers)
    run.json                    proof that the run record is a leaf here
    chain.json                  proof that the previous run's root is a leaf here
    anchors/<k>.json            anchor receipts

The run record (manifest ``run_record``, a canonical record of kind ``run``) is a leaf
of every run's tree: it binds the stream, period, algorithm, item count and previous
root to the timestamped root. The rest of the manifest is a description that the
verifier checks against authenticated data, never trusts on its own.

Versioning: ``version`` is ``MAJOR.MINOR``. A reader accepts every minor version of the
majors it knows and ignores keys it does not know; anything a reader of an older minor
version could misread needs a new major version, which older readers refuse.

Reading treats the bundle as hostile: member names with ``..``, absolute paths, drive
letters or backslashes, duplicate names, encrypted members and members or totals over
the size caps are refused before anything is read; members are read into memory (never
extracted) with those caps enforced while decompressing. Every problem is a
`BundleFormatError` with one line naming it.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from notary import __version__, record
from notary.errors import BundleFormatError, NotaryError, NotFoundError
from notary.ers import evidence_record
from notary.tsa.token import embedded_certificates, load_token, parse_signed_data

logger = logging.getLogger(__name__)

FORMAT = "notary-bundle"
VERSION = "1.0"
SUPPORTED_MAJOR = 1
PROOF_FORMAT = "notary-proof"
PROOF_VERSION = 1
CHAIN_FORMAT = "notary-chain"
CHAIN_VERSION = 1
RUN_FORMAT = "notary-run"
RUN_VERSION = 1
RUN_PROOF = "run.json"
CONSTRUCTION = "rfc4998-sorted"
MANIFEST = "manifest.json"
GUIDE = "VERIFY.md"
CHAIN = "chain.json"
DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}

MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 32 << 30
MAX_MEMBERS = 5_000_000

_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_HEX = re.compile(r"^[0-9a-f]*$")


# --- what the exporter hands over -----------------------------------------------------


@dataclass
class BundleItem:
    """One evidence item: raw digest bytes; ``record`` is the canonical record bytes."""

    n: int
    path: str
    record: bytes
    content_digest: bytes
    record_digest: bytes
    status: str
    siblings: list[bytes]


@dataclass
class BundleTimestamp:
    """One TSA response as stored; ``certificates`` are DER; ``serial`` is hex."""

    tsa: str
    response: bytes
    certificates: list[bytes]
    serial: str
    gen_time: str
    gen_time_raw: str
    policy: str
    hash_algorithm: str


@dataclass
class BundleContent:
    """Everything a bundle holds, as plain data (filled from the store by the exporter).

    ``previous`` has keys ``run``, ``period``, ``root`` (bytes) and ``siblings`` (the
    chain leaf's proof, list of bytes). ``leaves`` counts the whole tree, chain and
    run leaves included, even when ``items`` is a subset. ``run_record`` is the
    canonical run record (ASCII bytes, kind ``run``) and ``run_siblings`` the proof of
    its leaf ``H(run_record)``; both are required.
    """

    run: dict[str, Any]
    algorithm: str
    root: bytes
    leaves: int
    items: list[BundleItem]
    timestamps: list[BundleTimestamp]
    run_record: bytes
    run_siblings: list[bytes]
    previous: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    anchors: list[dict[str, Any]] = field(default_factory=list)


# --- writing --------------------------------------------------------------------------


def write_bundle(content: BundleContent, path: Path) -> None:
    """Write ``content`` as a zip bundle at ``path``.

    The zip is written to a temporary file in the same directory and renamed over
    ``path`` only when complete, so no reader ever sees half a bundle. Raises
    `BundleFormatError` for content that cannot form a valid bundle (unknown algorithm,
    digests of the wrong length, an unreadable token).
    """
    _check_content(content)
    layout = _Layout.of(content)
    path = Path(path)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in _write_atomic
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    _write_atomic(handle, path, _members(content, layout))
    logger.info(
        "bundle written: %s (root %s, %d items, %d tokens)",
        path,
        content.root.hex(),
        len(content.items),
        len(content.timestamps),
    )


def _write_atomic(
    handle: IO[bytes], path: Path, members: Iterable[tuple[str, bytes]]
) -> None:
    stamp = datetime.now(UTC).timetuple()[:6]
    try:
        with handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _check_content(content: BundleContent) -> None:
    size = DIGEST_SIZES.get(content.algorithm)
    if size is None:
        raise BundleFormatError(
            "bundle: unsupported algorithm (expected one of "
            f"{', '.join(DIGEST_SIZES)}, got {content.algorithm})",
            algorithm=content.algorithm,
        )
    _check_run_record(content.run_record)
    digests = [content.root, *content.run_siblings]
    for item in content.items:
        digests += [item.content_digest, item.record_digest, *item.siblings]
    if content.previous is not None:
        digests += [content.previous["root"], *content.previous["siblings"]]
    wrong = [len(d) for d in digests if len(d) != size]
    if wrong:
        raise BundleFormatError(
            f"bundle: digest of wrong length for {content.algorithm} "
            f"(expected {size} bytes, got {wrong[0]})",
            expected=size,
            actual=wrong[0],
        )


def _check_run_record(data: bytes) -> None:
    try:
        fields = record.decode(data)
    except ValueError as exc:
        raise BundleFormatError(
            f"bundle: run record is not a canonical record ({exc})"
        ) from exc
    if fields.get("kind") != "run":
        raise BundleFormatError(
            f"bundle: run record has kind {fields.get('kind')!r} (expected 'run')"
        )


@dataclass
class _Layout:
    """Member names chosen for one bundle's timestamps and certificates."""

    tsr: list[str]
    certs: dict[str, str]
    token: bytes | None

    @classmethod
    def of(cls, content: BundleContent) -> _Layout:
        safe = _safe_tsa_names([ts.tsa for ts in content.timestamps])
        counts: dict[str, int] = {}
        tsr = []
        for ts in content.timestamps:
            counts[ts.tsa] = counts.get(ts.tsa, 0) + 1
            tsr.append(f"timestamps/{safe[ts.tsa]}-{counts[ts.tsa]}.tsr")
        certs = {tsa: f"certs/{name}.pem" for tsa, name in safe.items()}
        return cls(tsr=tsr, certs=certs, token=_evidence_token(content))


def _safe_tsa_names(names: Sequence[str]) -> dict[str, str]:
    """Map each TSA name to a distinct file-name-safe form."""
    safe: dict[str, str] = {}
    for name in names:
        if name in safe:
            continue
        base = _UNSAFE_NAME_CHARS.sub("_", name).strip("._") or "tsa"
        candidate, k = base, 1
        while candidate in safe.values():
            k += 1
            candidate = f"{base}-{k}"
        safe[name] = candidate
    return safe


def _evidence_token(content: BundleContent) -> bytes | None:
    """Return the token the evidence records carry: the first of the tree's algorithm.

    NOTE: RFC 4998 has no place for parallel tokens over one root (a chain's further
    timestamps renew the previous one), so each evidence record carries one token; the
    bundle's other tokens are in timestamps/ for every other verifier.
    """
    for ts in content.timestamps:
        if ts.hash_algorithm == content.algorithm:
            try:
                return load_token(ts.response)
            except NotaryError as exc:
                raise BundleFormatError(
                    f"bundle: timestamp from {ts.tsa} (serial {ts.serial}) does not "
                    f"hold a token ({exc.message})",
                    tsa=ts.tsa,
                    serial=ts.serial,
                ) from exc
    return None


def _members(content: BundleContent, layout: _Layout) -> Iterator[tuple[str, bytes]]:
    yield MANIFEST, _render_manifest(_manifest(content, layout))
    yield GUIDE, render_guide(content, layout.tsr, layout.certs).encode("utf-8")
    for ts, name in zip(content.timestamps, layout.tsr, strict=True):
        yield name, ts.response
    yield from _certificate_members(content, layout)
    for item in content.items:
        yield proof_name(item.n), _dump_json(_proof_json(content, item))
        if layout.token is not None:
            group = [item.content_digest, item.record_digest]
            der = evidence_record(content.algorithm, group, item.siblings, layout.token)
            yield evidence_record_name(item.n), der
    yield RUN_PROOF, _dump_json(_run_proof_json(content))
    if content.previous is not None:
        yield CHAIN, _dump_json(_chain_json(content, content.previous))
    for k, anchor in enumerate(content.anchors, start=1):
        yield f"anchors/{k}.json", _dump_json(_jsonable(anchor))


def proof_name(n: int) -> str:
    return f"items/{n:06d}.json"


def evidence_record_name(n: int) -> str:
    return f"items/{n:06d}.ers"


def _certificate_members(
    content: BundleContent, layout: _Layout
) -> Iterator[tuple[str, bytes]]:
    by_tsa: dict[str, list[bytes]] = {}
    for ts in content.timestamps:
        found = by_tsa.setdefault(ts.tsa, [])
        signed_data = parse_signed_data(load_token(ts.response))
        for der in [*embedded_certificates(signed_data), *ts.certificates]:
            if der not in found:
                found.append(der)
    for tsa, ders in by_tsa.items():
        certs = [x509.load_der_x509_certificate(der) for der in ders]
        yield layout.certs[tsa], b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def _manifest(content: BundleContent, layout: _Layout) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": f"notary {__version__}",
        "run": _jsonable(content.run),
        "run_record": content.run_record.decode("ascii"),
        "run_proof": RUN_PROOF,
        "tree": {
            "algorithm": content.algorithm,
            "construction": CONSTRUCTION,
            "root": content.root.hex(),
            "leaves": content.leaves,
        },
        "previous": _previous_json(content.previous),
        "items": [_item_json(item, layout.token is not None) for item in content.items],
        "errors": _jsonable(content.errors),
        "skipped": _jsonable(content.skipped),
        "timestamps": [
            _timestamp_json(ts, name, layout.certs[ts.tsa])
            for ts, name in zip(content.timestamps, layout.tsr, strict=True)
        ],
        "anchors": [
            {"file": f"anchors/{k}.json", **_jsonable(anchor)}
            for k, anchor in enumerate(content.anchors, start=1)
        ],
    }


def _previous_json(previous: dict[str, Any] | None) -> dict[str, Any] | None:
    if previous is None:
        return None
    return {
        "run": previous.get("run"),
        "period": previous.get("period"),
        "root": bytes(previous["root"]).hex(),
        "proof": CHAIN,
    }


def _item_json(item: BundleItem, has_ers: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "n": item.n,
        "path": item.path,
        "record": item.record.decode("ascii"),
        "content_digest": item.content_digest.hex(),
        "record_digest": item.record_digest.hex(),
        "status": item.status,
        "proof": proof_name(item.n),
    }
    if has_ers:
        data["evidence_record"] = evidence_record_name(item.n)
    return data


def _timestamp_json(ts: BundleTimestamp, name: str, certs: str) -> dict[str, Any]:
    return {
        "tsa": ts.tsa,
        "file": name,
        "certs": certs,
        "serial": ts.serial,
        "gen_time": ts.gen_time,
        "gen_time_raw": ts.gen_time_raw,
        "policy": ts.policy,
        "hash_algorithm": ts.hash_algorithm,
    }


def _proof_json(content: BundleContent, item: BundleItem) -> dict[str, Any]:
    return {
        "format": PROOF_FORMAT,
        "version": PROOF_VERSION,
        "algorithm": content.algorithm,
        "root": content.root.hex(),
        "path": item.path,
        "record": item.record.decode("ascii"),
        "content_digest": item.content_digest.hex(),
        "record_digest": item.record_digest.hex(),
        "siblings": [s.hex() for s in item.siblings],
    }


def _run_proof_json(content: BundleContent) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "algorithm": content.algorithm,
        "root": content.root.hex(),
        "run_record": content.run_record.decode("ascii"),
        "siblings": [s.hex() for s in content.run_siblings],
    }


def _chain_json(content: BundleContent, previous: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": CHAIN_FORMAT,
        "version": CHAIN_VERSION,
        "algorithm": content.algorithm,
        "root": content.root.hex(),
        "previous_run": previous.get("run"),
        "previous_period": previous.get("period"),
        "previous_root": bytes(previous["root"]).hex(),
        "siblings": [bytes(s).hex() for s in previous["siblings"]],
    }


def _jsonable(value: Any) -> Any:
    """Return ``value`` with bytes as hex and datetimes as ISO text, for JSON."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _dump_json(document: Any) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def _render_manifest(manifest: dict[str, Any]) -> bytes:
    """Render the manifest with one line per list entry (readable, and compact)."""
    lines = []
    for key, value in manifest.items():
        if isinstance(value, list) and value:
            entries = ",\n    ".join(json.dumps(v, ensure_ascii=True) for v in value)
            text = f"[\n    {entries}\n  ]"
        else:
            text = json.dumps(value, ensure_ascii=True)
        lines.append(f"  {json.dumps(key)}: {text}")
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("ascii")


def render_guide(
    content: BundleContent, tsr_names: Sequence[str], cert_names: dict[str, str]
) -> str:
    """Return VERIFY.md: what the bundle proves and how to check it, in plain words."""
    run = content.run
    root = content.root.hex()
    lines = [
        "# How to check this evidence bundle",
        "",
        f"This bundle proves that the evidence items of stream `{run.get('stream')}`, "
        f"period `{run.get('period')}` (run {run.get('id')}), existed with exactly the "
        "bytes listed in `manifest.json` no later than the time stated by the "
        "time-stamping authority (TSA) below.",
        "",
        f"All items were combined into one fingerprint, the root `{root}` "
        f"({content.algorithm}, {content.leaves} leaves). The TSA signed that root. "
        "Each item's file `items/NNNNNN.json` shows how the item leads to the root. "
        "The tree also holds the run record (`run_record` in `manifest.json`, its "
        "proof in `run.json`): it names the stream, the period, the number of items "
        "and the previous run's root, so none of them can be changed unnoticed.",
        "",
        "## 1. Check the TSA's signature on the root (OpenSSL)",
        "",
        "Use the TSA's root certificate as published by the TSA itself (`TSA-CA.pem` "
        "below). The certificates in `certs/` came with this bundle: they are fine for "
        "a first look but prove nothing on their own, because whoever made a bundle "
        "could have made them too.",
        "",
    ]
    for ts, name in zip(content.timestamps, tsr_names, strict=True):
        lines += [
            f"Timestamp from `{ts.tsa}`, issued {ts.gen_time} (serial {ts.serial}):",
            "",
            "```",
            f"openssl ts -verify -digest {root} -in {name} -CAfile TSA-CA.pem "
            f"-untrusted {cert_names[ts.tsa]}",
            "```",
            "",
        ]
        attime = _epoch(ts.gen_time)
        if attime is not None:
            lines += [
                "If the TSA's certificate has expired since, judge it at the moment of "
                f"the timestamp by adding `-attime {attime}`.",
                "",
            ]
    lines += [
        "OpenSSL prints `Verification: OK` when the TSA signed exactly this root. A "
        "token stays valid after its TSA certificate expires; `-attime` checks the "
        "certificates at the token's time instead of now.",
        "",
        "## 2. Check the files themselves (notary)",
        "",
        "With the evidence files in a folder `EVIDENCE`:",
        "",
        "```",
        "notary verify THIS-BUNDLE.zip --dir EVIDENCE --trust-root TSA-CA.pem",
        "```",
        "",
        "or for one file: `notary verify THIS-BUNDLE.zip --file PATH --trust-root "
        "TSA-CA.pem`. notary recomputes every file's fingerprint and its metadata, "
        "walks each item's proof to the root and checks the timestamp. The answer is "
        "`valid`, `invalid` (naming every file that does not match) or `indeterminate` "
        "(for example without `--trust-root`).",
        "",
        "## 3. Other tools",
        "",
        "Each `items/NNNNNN.ers` is a standard RFC 4998 evidence record for that "
        "item, which independent Evidence Record Syntax validators can check against "
        "the file.",
        "",
    ]
    return "\n".join(lines)


# --- reading --------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestItem:
    """One item as the manifest lists it (digests as bytes, record as its bytes)."""

    n: int
    path: str
    record: bytes
    content_digest: bytes
    record_digest: bytes
    status: str
    proof: str
    evidence_record: str | None


@dataclass(frozen=True)
class ManifestTimestamp:
    tsa: str
    file: str
    certs: str | None
    serial: str | None
    gen_time: str | None
    gen_time_raw: str | None
    policy: str | None
    hash_algorithm: str | None


@dataclass(frozen=True)
class ManifestPrevious:
    run: int | None
    period: str | None
    root: bytes
    proof: str


@dataclass(frozen=True)
class ItemProof:
    """A parsed ``items/NNNNNN.json``."""

    algorithm: str
    root: bytes
    path: str
    record: bytes
    content_digest: bytes
    record_digest: bytes
    siblings: list[bytes]


@dataclass(frozen=True)
class RunProof:
    """A parsed ``run.json``: the run record's leaf proof in this tree."""

    algorithm: str
    root: bytes
    run_record: bytes
    siblings: list[bytes]


@dataclass(frozen=True)
class ChainProof:
    """A parsed ``chain.json``: the previous root's leaf proof in this tree."""

    algorithm: str
    root: bytes
    previous_root: bytes
    siblings: list[bytes]


class _Source:
    """Capped, in-memory access to the members of a zip or a directory."""

    names: frozenset[str]

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying file, if any."""


class _ZipSource(_Source):
    def __init__(self, path: Path, max_member: int, max_total: int) -> None:
        self.path = path
        self.max_member = max_member
        try:
            self.archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
            raise BundleFormatError(
                f"bundle {path}: not a zip file or truncated ({exc})", bundle=str(path)
            ) from exc
        except OSError as exc:
            raise NotaryError(
                f"bundle {path}: cannot read ({exc.strerror})", bundle=str(path)
            ) from exc
        try:
            self.infos = _checked_infos(
                path, self.archive.infolist(), max_member, max_total
            )
        except BundleFormatError:
            self.archive.close()
            raise
        self.names = frozenset(self.infos)

    def read(self, name: str) -> bytes:
        info = self.infos.get(name)
        if info is None:
            raise NotFoundError(f"bundle {self.path}: no member {name}", member=name)
        try:
            with self.archive.open(info) as member:
                data = member.read(self.max_member + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
            raise BundleFormatError(
                f"bundle {self.path}: member {name} is damaged ({exc})", member=name
            ) from exc
        _check_size(self.path, name, len(data), self.max_member)
        return data

    def close(self) -> None:
        self.archive.close()


def _checked_infos(
    path: Path, infos: list[zipfile.ZipInfo], max_member: int, max_total: int
) -> dict[str, zipfile.ZipInfo]:
    if len(infos) > MAX_MEMBERS:
        raise BundleFormatError(
            f"bundle {path}: too many members (at most {MAX_MEMBERS}, got {len(infos)})"
        )
    checked: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        check_member_name(f"bundle {path}", info.filename)
        if info.filename in checked:
            raise BundleFormatError(
                f"bundle {path}: duplicate member {info.filename!r}",
                member=info.filename,
            )
        if info.flag_bits & 0x1:
            raise BundleFormatError(
                f"bundle {path}: member {info.filename!r} is encrypted",
                member=info.filename,
            )
        _check_size(path, info.filename, info.file_size, max_member)
        total += info.file_size
        checked[info.filename] = info
    if total > max_total:
        raise BundleFormatError(
            f"bundle {path}: members too large in total "
            f"(at most {max_total} bytes, got {total})",
            limit=max_total,
            size=total,
        )
    return {name: info for name, info in checked.items() if not info.is_dir()}


def check_member_name(where: str, name: str) -> None:
    """Refuse member names that could leave the bundle or mean different files.

    ``where`` starts the error message (``bundle PATH`` or the manifest field).
    """
    parts = name.rstrip("/").split("/")
    problem = None
    if not name or "\x00" in name:
        problem = "an empty name or a NUL byte"
    elif "\\" in name:
        problem = "a backslash"
    elif name.startswith("/"):
        problem = "an absolute path"
    elif _DRIVE.match(name):
        problem = "a drive letter"
    elif any(part in ("", ".", "..") for part in parts):
        problem = "a '..', '.' or empty path component"
    if problem is not None:
        raise BundleFormatError(
            f"{where}: unsafe member name {name!r} ({problem}); nothing extracted",
            member=name,
        )


def _check_size(path: Path, name: str, size: int, limit: int) -> None:
    if size > limit:
        raise BundleFormatError(
            f"bundle {path}: member {name} too large (at most {limit} bytes, got "
            f"{size if size <= limit + 1 else 'more'})",
            member=name,
            limit=limit,
        )


class _DirectorySource(_Source):
    def __init__(self, path: Path, max_member: int, max_total: int) -> None:
        self.path = path
        self.max_member = max_member
        sizes = dict(_walk_regular_files(path))
        for name, size in sizes.items():
            _check_size(path, name, size, max_member)
        total = sum(sizes.values())
        if total > max_total:
            raise BundleFormatError(
                f"bundle {path}: members too large in total "
                f"(at most {max_total} bytes, got {total})"
            )
        self.names = frozenset(sizes)

    def read(self, name: str) -> bytes:
        if name not in self.names:
            raise NotFoundError(f"bundle {self.path}: no member {name}", member=name)
        try:
            with open(self.path / name, "rb") as member:
                data = member.read(self.max_member + 1)
        except OSError as exc:
            raise NotaryError(
                f"bundle {self.path}: cannot read {name} ({exc.strerror})", member=name
            ) from exc
        _check_size(self.path, name, len(data), self.max_member)
        return data


def _walk_regular_files(root: Path) -> Iterator[tuple[str, int]]:
    """Yield (relative name, size) of every regular file; refuse links and devices."""
    for directory, subdirs, files in os.walk(root):
        for entry in [*subdirs, *files]:
            full = Path(directory) / entry
            name = full.relative_to(root).as_posix()
            try:
                info = full.lstat()
            except OSError as exc:
                raise NotaryError(f"bundle {root}: cannot read {name} ({exc})") from exc
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise BundleFormatError(
                    f"bundle {root}: member {name} is not a regular file "
                    "(links and devices are refused)",
                    member=name,
                )
            check_member_name(f"bundle {root}", name)
            yield name, info.st_size


class Bundle:
    """A bundle opened for reading: its parsed manifest and capped member access.

    Use as a context manager (or call `close`). Members other than the manifest are
    read on demand, so even bundles of millions of items need little memory.
    """

    def __init__(self, path: Path, source: _Source, manifest: dict[str, Any]) -> None:
        self.path = path
        self._source = source
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.created: str | None = _optional_str(manifest, "created", "manifest")
        self.generator: str | None = _optional_str(manifest, "generator", "manifest")
        self.run: dict[str, Any] = _typed(manifest, "run", dict, "manifest")
        self.run_record: bytes = _record_text(manifest, "run_record", "manifest")
        self.run_proof: str = _member_ref(manifest, "run_proof", "manifest")
        tree = _typed(manifest, "tree", dict, "manifest")
        self.algorithm: str = _algorithm(tree)
        self.root: bytes = _hex_digest(tree, "root", self.algorithm, "manifest.tree")
        self.leaves: int = _positive_int(tree, "leaves", "manifest.tree")
        self.construction: str = _construction(tree)
        self.items = [
            _manifest_item(entry, k, self.algorithm)
            for k, entry in enumerate(_typed(manifest, "items", list, "manifest"))
        ]
        self.timestamps = [
            _manifest_timestamp(entry, k)
            for k, entry in enumerate(_typed(manifest, "timestamps", list, "manifest"))
        ]
        self.previous = _manifest_previous(manifest.get("previous"), self.algorithm)
        self.errors: list[Any] = _typed(manifest, "errors", list, "manifest", [])
        self.skipped: list[Any] = _typed(manifest, "skipped", list, "manifest", [])
        self.anchors: list[Any] = _typed(manifest, "anchors", list, "manifest", [])

    @property
    def names(self) -> frozenset[str]:
        """Every member name (directories excluded)."""
        return self._source.names

    @property
    def is_whole_run(self) -> bool:
        """Tell whether the bundle holds as many items as its run record counts.

        Parsing only: `notary.verify` authenticates the run record before it relies
        on this (and on the items being distinct).
        """
        try:
            counted = record.decode(self.run_record).get("items")
        except ValueError:
            return False
        return isinstance(counted, int) and counted == len(self.items)

    def read(self, name: str) -> bytes:
        """Return a member's bytes ; NotFoundError if absent."""
        return self._source.read(name)

    def _proof_document(
        self, where: str, name: str, version: int
    ) -> tuple[dict[str, Any], str]:
        """Load a proof member, check its format and return it with its algorithm."""
        doc = _load_json(self.path, where, self.read(where))
        _expect_format(doc, name, version, where)
        return doc, _algorithm(doc, where)

    def read_proof(self, item: ManifestItem) -> ItemProof:
        """Parse an item's proof file; BundleFormatError when it is no valid proof."""
        where = item.proof
        doc, algorithm = self._proof_document(where, PROOF_FORMAT, PROOF_VERSION)
        return ItemProof(
            algorithm=algorithm,
            root=_hex_digest(doc, "root", algorithm, where),
            path=_typed(doc, "path", str, where),
            record=_typed(doc, "record", str, where).encode("utf-8"),
            content_digest=_hex_digest(doc, "content_digest", algorithm, where),
            record_digest=_hex_digest(doc, "record_digest", algorithm, where),
            siblings=_hex_list(doc, "siblings", algorithm, where),
        )

    def read_run_proof(self) -> RunProof:
        """Parse ``run.json`` (the run record's proof); BundleFormatError if bad."""
        where = self.run_proof
        doc, algorithm = self._proof_document(where, RUN_FORMAT, RUN_VERSION)
        return RunProof(
            algorithm=algorithm,
            root=_hex_digest(doc, "root", algorithm, where),
            run_record=_record_text(doc, "run_record", where),
            siblings=_hex_list(doc, "siblings", algorithm, where),
        )

    def read_chain(self) -> ChainProof:
        """Parse ``chain.json`` (previous root's proof); BundleFormatError if bad."""
        assert self.previous is not None
        where = self.previous.proof
        doc, algorithm = self._proof_document(where, CHAIN_FORMAT, CHAIN_VERSION)
        return ChainProof(
            algorithm=algorithm,
            root=_hex_digest(doc, "root", algorithm, where),
            previous_root=_hex_digest(doc, "previous_root", algorithm, where),
            siblings=_hex_list(doc, "siblings", algorithm, where),
        )

    def certificates(self) -> list[x509.Certificate]:
        """Return every certificate in ``certs/*.pem`` (each file parsed on its own)."""
        found: list[x509.Certificate] = []
        for name in sorted(self.names):
            if name.startswith("certs/") and name.endswith(".pem"):
                found += _pem_certificates(self.path, name, self.read(name))
        return found

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_bundle(
    path: Path,
    *,
    max_member: int = MAX_MEMBER_BYTES,
    max_total: int = MAX_TOTAL_BYTES,
) -> Bundle:
    """Open a zip or directory bundle and validate its manifest.

    ``max_member`` and ``max_total`` cap the uncompressed size (bytes) of each member
    and of all members. Raises NotFoundError when ``path`` does not exist,
    BundleFormatError for anything that is not a readable bundle of a supported version.
    """
    path = Path(path)
    source = _open_source(path, max_member, max_total)
    try:
        if MANIFEST not in source.names:
            raise BundleFormatError(
                f"bundle {path}: no {MANIFEST} (not a notary bundle)", bundle=str(path)
            )
        manifest = _load_json(path, MANIFEST, source.read(MANIFEST))
        check_version(path, manifest)
        return Bundle(path, source, manifest)
    except BaseException:
        source.close()
        raise


def _open_source(path: Path, max_member: int, max_total: int) -> _Source:
    if path.is_dir():
        return _DirectorySource(path, max_member, max_total)
    if not path.exists():
        raise NotFoundError(
            f"bundle {path}: no such file or directory", bundle=str(path)
        )
    return _ZipSource(path, max_member, max_total)


def check_version(path: Path, manifest: dict[str, Any]) -> None:
    """Refuse unknown formats and major versions this notary does not know."""
    name = manifest.get("format")
    if name != FORMAT:
        raise BundleFormatError(
            f"bundle {path}: unknown format (expected {FORMAT}, got {name!r})",
            expected=FORMAT,
            actual=name,
        )
    version = manifest.get("version")
    match = re.fullmatch(r"(\d+)\.(\d+)", version) if isinstance(version, str) else None
    if match is None:
        raise BundleFormatError(
            f"bundle {path}: version is not MAJOR.MINOR (got {version!r})",
            actual=version,
        )
    major = int(match.group(1))
    if major != SUPPORTED_MAJOR:
        newer = "newer than" if major > SUPPORTED_MAJOR else "not"
        raise BundleFormatError(
            f"bundle {path}: format version {version} is {newer} what this notary "
            f"supports ({SUPPORTED_MAJOR}.x)",
            actual=version,
            supported=f"{SUPPORTED_MAJOR}.x",
            hint="upgrade notary to read this bundle"
            if major > SUPPORTED_MAJOR
            else None,
        )


# --- manifest fields, typed -----------------------------------------------------------


def _load_json(path: Path, name: str, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, int digits limit
        raise BundleFormatError(
            f"bundle {path}: {name} is not valid JSON ({exc})", member=name
        ) from exc
    if not isinstance(doc, dict):
        raise BundleFormatError(
            f"bundle {path}: {name} is not a JSON object (got {type(doc).__name__})",
            member=name,
        )
    return doc


def _expect_format(doc: dict[str, Any], name: str, version: int, where: str) -> None:
    if doc.get("format") != name or doc.get("version") != version:
        raise BundleFormatError(
            f"{where}: unknown format (expected {name} version {version}, got "
            f"{doc.get('format')!r} version {doc.get('version')!r})",
            member=where,
        )


_MISSING = object()


def _typed(
    doc: dict[str, Any], key: str, kind: type, where: str, default: Any = _MISSING
) -> Any:
    value = doc.get(key, _MISSING)
    if value is _MISSING and default is not _MISSING:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        got = "nothing" if value is _MISSING else type(value).__name__
        raise BundleFormatError(
            f"{where}: {key} has the wrong type (expected {kind.__name__}, got {got})",
            field=f"{where}.{key}",
        )
    return value


def _record_text(doc: dict[str, Any], key: str, where: str) -> bytes:
    """Return a record's exact bytes; records are ASCII (notary.record)."""
    text: str = _typed(doc, key, str, where)
    if not text.isascii():
        raise BundleFormatError(
            f"{where}: {key} is not ASCII (records are)", field=f"{where}.{key}"
        )
    return text.encode("ascii")


def _optional_str(doc: dict[str, Any], key: str, where: str) -> str | None:
    value = doc.get(key)
    return None if value is None else str(_typed(doc, key, str, where))


def _positive_int(doc: dict[str, Any], key: str, where: str) -> int:
    value: int = _typed(doc, key, int, where)
    if value < 1:
        raise BundleFormatError(
            f"{where}: {key} must be positive (got {value})", field=f"{where}.{key}"
        )
    return value


def _algorithm(doc: dict[str, Any], where: str = "manifest.tree") -> str:
    name = _typed(doc, "algorithm", str, where)
    if name not in DIGEST_SIZES:
        raise BundleFormatError(
            f"{where}: unsupported algorithm (expected one of "
            f"{', '.join(DIGEST_SIZES)}, got {name!r})",
            algorithm=name,
        )
    return str(name)


def _construction(tree: dict[str, Any]) -> str:
    name = _typed(tree, "construction", str, "manifest.tree")
    if name != CONSTRUCTION:
        raise BundleFormatError(
            "manifest.tree: unknown construction "
            f"(expected {CONSTRUCTION}, got {name!r})",
            expected=CONSTRUCTION,
            actual=name,
        )
    return str(name)


def _hex_digest(doc: dict[str, Any], key: str, algorithm: str, where: str) -> bytes:
    return _parse_hex(_typed(doc, key, str, where), algorithm, f"{where}.{key}")


def _hex_list(doc: dict[str, Any], key: str, algorithm: str, where: str) -> list[bytes]:
    values = _typed(doc, key, list, where)
    return [
        _parse_hex(
            v if isinstance(v, str) else repr(v), algorithm, f"{where}.{key}[{k}]"
        )
        for k, v in enumerate(values)
    ]


def _parse_hex(text: str, algorithm: str, where: str) -> bytes:
    size = DIGEST_SIZES[algorithm]
    if len(text) != 2 * size or not _HEX.match(text):
        raise BundleFormatError(
            f"{where}: expected {2 * size} lowercase hex digits for {algorithm} "
            f"(got {text[:80]!r})",
            field=where,
        )
    return binascii.unhexlify(text)


def _manifest_item(entry: Any, k: int, algorithm: str) -> ManifestItem:
    where = f"manifest.items[{k}]"
    if not isinstance(entry, dict):
        raise BundleFormatError(f"{where}: expected an object", field=where)
    ers = entry.get("evidence_record")
    return ManifestItem(
        n=_positive_int(entry, "n", where),
        path=_typed(entry, "path", str, where),
        record=_typed(entry, "record", str, where).encode("utf-8"),
        content_digest=_hex_digest(entry, "content_digest", algorithm, where),
        record_digest=_hex_digest(entry, "record_digest", algorithm, where),
        status=_typed(entry, "status", str, where),
        proof=_member_ref(entry, "proof", where),
        evidence_record=None
        if ers is None
        else _member_ref(entry, "evidence_record", where),
    )


def _manifest_timestamp(entry: Any, k: int) -> ManifestTimestamp:
    where = f"manifest.timestamps[{k}]"
    if not isinstance(entry, dict):
        raise BundleFormatError(f"{where}: expected an object", field=where)
    certs = entry.get("certs")
    return ManifestTimestamp(
        tsa=_typed(entry, "tsa", str, where),
        file=_member_ref(entry, "file", where),
        certs=None if certs is None else _member_ref(entry, "certs", where),
        serial=_optional_str(entry, "serial", where),
        gen_time=_optional_str(entry, "gen_time", where),
        gen_time_raw=_optional_str(entry, "gen_time_raw", where),
        policy=_optional_str(entry, "policy", where),
        hash_algorithm=_optional_str(entry, "hash_algorithm", where),
    )


def _manifest_previous(entry: Any, algorithm: str) -> ManifestPrevious | None:
    where = "manifest.previous"
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise BundleFormatError(f"{where}: expected an object or null", field=where)
    run = entry.get("run")
    return ManifestPrevious(
        run=None if run is None else _typed(entry, "run", int, where),
        period=_optional_str(entry, "period", where),
        root=_hex_digest(entry, "root", algorithm, where),
        proof=_member_ref(entry, "proof", where),
    )


def _member_ref(doc: dict[str, Any], key: str, where: str) -> str:
    name: str = _typed(doc, key, str, where)
    check_member_name(where, name)
    return name


def _pem_certificates(path: Path, name: str, data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise BundleFormatError(
            f"bundle {path}: {name} holds no readable PEM certificate ({exc})",
            member=name,
        ) from exc


def _epoch(iso: str) -> int | None:
    """Return whole seconds since 1970 of an ISO 8601 time, or None if unparseable."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp())
