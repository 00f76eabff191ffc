"""The offline verifier: a bundle (and optionally the evidence files) in, a report out.

It never opens the database. Every rule is one named check (`notary.verdict.Check`):

- ``bundle format``: the manifest is a supported notary bundle;
- ``trust root``: undecided when no trust root was given, because the token chain is
  then checked only against certificates taken from the bundle itself;
- ``timestamp`` (one per token, advisory) and ``timestamps`` (at least one valid token);
- ``timestamp record``: the manifest's description of each token matches the token;
- ``run record``: H(run record) is a leaf of the tree (``run.json``), and the
  manifest's stream, period and algorithm are the run record's; only authenticated
  values (the run record's) decide what the bundle is and whether it is whole;
- ``token count`` (advisory): the bundle holds the tokens the run was sealed with;
- ``previous run``: the run record's previous root is a leaf of this tree
  (``chain.json``), and the manifest names the same previous run;
- ``tree``: the leaf count is the run record's; a whole-run bundle's leaves rebuild
  the root;
- per item: ``item record`` (record digest = H(record bytes), record names the item,
  the manifest status agrees with the record), ``item content`` (only when a file is
  given: its kind by ``lstat``, its digest, recomputed by streaming the file, and
  size), ``item proof`` (the group recomputed from the digests leads to the root),
  ``item evidence record`` (the .ers holds the same proof and a bundle token);
- with ``--dir``: ``extra file`` for every file under the directory that is no item:
  invalid for a whole-run bundle, undecided for a partial one and for files the
  manifest lists as errors or skipped (those lists are not authenticated);
- ``anchor`` (advisory): one per anchor record.

Advisory checks (``facts["advisory"]``) are reported but never decide the verdict: a
bundle with one valid token and one the auditor cannot check is valid, and so is a
TSA-valid bundle whose anchor cannot be checked offline.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from notary import merkle, period, record
from notary.bundle import (
    DIGEST_SIZES,
    Bundle,
    ManifestItem,
    ManifestTimestamp,
    read_bundle,
)
from notary.errors import (
    BundleFormatError,
    EvidenceRecordError,
    NotaryError,
    NotFoundError,
    TokenFormatError,
    UsageError,
)
from notary.ers import evidence_record, parse_evidence_record
from notary.tsa.token import load_certificates, load_token, token_info
from notary.tsa.verify import TokenReport, verify_token
from notary.verdict import Check, Verdict, combine

logger = logging.getLogger(__name__)

NO_TRUST_ROOT_WARNING = (
    "no --trust-root given: the timestamp's certificate chain was checked only against "
    "certificates taken from the bundle itself, which whoever made the bundle could "
    "have made too; the verdict can be indeterminate at best"
)
NO_TRUST_ROOT_ERS_WARNING = (
    "no --trust-root given: the token's certificate chain cannot be checked; the "
    "verdict can be indeterminate at best"
)
NO_TRUST_ROOT_CHECK = (
    "none given: chain checked only against the bundle's own certificates"
)
NO_RECORD_WARNING = (
    "an evidence record holds no metadata record: only the file's content was checked, "
    "not its name, size or time"
)
INTERNAL_ONLY = (
    "no evidence files given: only the bundle's internal consistency was checked"
)
NO_PATH_DETAIL = (
    "the timestamp does not chain to the trust root you gave: not proven by that TSA"
)
METADATA_NOT_CONTENT = "this file is the item's metadata record, not its content"
MAX_RECORD_BYTES = 1 << 20

ADVISORY = "advisory"
ERS_MAGIC = 0x30
ZIP_MAGIC = b"PK"


@dataclass
class BundleReport:
    """The outcome of verifying one bundle (or one evidence record).

    ``info`` describes what was verified (run, stream, period, algorithm, root hex,
    leaves, items, scope); ``warnings`` are shown loudly at the top and bottom.
    """

    bundle: str
    verdict: Verdict
    checks: list[Check]
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def failing_items(self) -> list[str]:
        """Return each item (file) named by a failed check, once, in order."""
        names = [c.item for c in self.checks if c.ok is False and c.item is not None]
        return list(dict.fromkeys(names))

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "verdict": str(self.verdict),
            "warnings": self.warnings,
            **self.info,
            "failing": self.failing_items,
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass
class ChainReport:
    """The outcome of verifying several bundles of one stream and the links between."""

    verdict: Verdict
    checks: list[Check]
    bundles: list[BundleReport]
    warnings: list[str] = field(default_factory=list)

    @property
    def failing_items(self) -> list[str]:
        return [name for report in self.bundles for name in report.failing_items]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "warnings": self.warnings,
            "failing": self.failing_items,
            "checks": [c.to_json() for c in self.checks],
            "bundles": [report.to_json() for report in self.bundles],
        }


def is_advisory(check: Check) -> bool:
    return bool(check.facts.get(ADVISORY))


def decide(checks: Sequence[Check]) -> Verdict:
    """Return the verdict of the checks that count (advisory ones never do)."""
    return combine(c for c in checks if not is_advisory(c))


def advisory(check: Check) -> Check:
    check.facts[ADVISORY] = True
    return check


# --- entry points ---------------------------------------------------------------------


def verify_bundle(
    bundle: Path,
    *,
    directory: Path | None = None,
    files: Sequence[tuple[Path, str | None]] = (),
    trust_roots: Sequence[x509.Certificate] = (),
    rpc_url: str | None = None,
) -> BundleReport:
    """Verify a bundle (zip or directory) or an RFC 4998 ``.ers`` file.

    ``directory`` checks every item against the files under it (missing, changed,
    extra); ``files`` are (path, item name or None) pairs checked one by one. Without
    either, only the bundle's internal consistency is checked. Without ``trust_roots``
    the verdict is indeterminate at best. Raises BundleFormatError (not a bundle),
    UsageError (bad arguments, ambiguous file) and NotFoundError (no such bundle/file).
    """
    bundle = Path(bundle)
    if is_evidence_record(bundle):
        if directory is not None:
            raise UsageError("--dir: an evidence record covers one file; use --file")
        return verify_evidence_record(bundle, files=files, trust_roots=trust_roots)
    with read_bundle(bundle) as opened:
        return _Verifier(opened, trust_roots, rpc_url).run(directory, files)


def verify_bundles(
    bundles: Sequence[Path],
    *,
    trust_roots: Sequence[x509.Certificate] = (),
    rpc_url: str | None = None,
) -> ChainReport:
    """Verify several bundles of one stream and the chain of their runs.

    Each bundle is verified on its own (internal consistency); then the runs must form
    an unbroken chain: each run's previous root is the root of the bundle of the period
    before it, and no period between the first and the last is missing.
    """
    reports = [
        verify_bundle(path, trust_roots=trust_roots, rpc_url=rpc_url)
        for path in bundles
    ]
    checks = [_bundle_summary(report) for report in reports]
    checks += check_run_chain(reports)
    warnings = list(dict.fromkeys(w for r in reports for w in r.warnings))
    return ChainReport(decide(checks), checks, reports, warnings)


def is_evidence_record(path: Path) -> bool:
    """Tell an RFC 4998 evidence record from a zip or directory bundle.

    A file named ``*.ers`` is one (so that garbage given as one is reported as no
    evidence record), and so is any file starting like a DER SEQUENCE.
    """
    if path.is_dir():
        return False
    if path.suffix.lower() == ".ers" and path.exists():
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
    except FileNotFoundError as exc:
        raise NotFoundError(f"bundle {path}: no such file", bundle=str(path)) from exc
    except OSError as exc:
        raise NotaryError(f"bundle {path}: cannot read ({exc.strerror})") from exc
    return head[:1] == bytes([ERS_MAGIC]) and head != ZIP_MAGIC


# --- one bundle -----------------------------------------------------------------------


class _Verifier:
    """Runs the checks of one opened bundle."""

    def __init__(
        self,
        bundle: Bundle,
        trust_roots: Sequence[x509.Certificate],
        rpc_url: str | None,
    ) -> None:
        self.bundle = bundle
        self.algorithm = bundle.algorithm
        self.trust_roots = list(trust_roots)
        self.rpc_url = rpc_url
        self.warnings: list[str] = []
        self.tokens: set[bytes] = set()
        self.roots_given = bool(trust_roots)

    def run(
        self, directory: Path | None, files: Sequence[tuple[Path, str | None]]
    ) -> BundleReport:
        b = self.bundle
        targets = _targets(b, directory, files)
        checks = [check_format(b), *self.check_trust()]
        checks += self.check_timestamps()
        run_checks, described = check_run_record(b)
        checks += run_checks
        checks += check_token_count(described, len(self.tokens))
        checks += check_previous(b, described)
        whole = is_whole(b, described)
        checks.append(check_tree(b, described, whole))
        for item in b.items:
            checks += self.check_item(item, targets.get(item.n))
        if directory is not None:
            checks += check_extra_files(b, directory, described, whole)
        elif not files:
            self.warnings.append(INTERNAL_ONLY)
        checks += check_anchors(b, self.rpc_url)
        scope = _scope(directory, files, len(targets))
        return self.report(checks, scope, described, whole)

    def report(
        self,
        checks: list[Check],
        scope: str,
        described: RunRecord | None,
        whole: bool,
    ) -> BundleReport:
        b = self.bundle
        # NOTE: stream and period are shown from the run record, which the proof
        # authenticates; the manifest's copies only when that failed (and said so).
        # The run id is in no record: it is the manifest's word.
        info = {
            "format": f"{b.manifest.get('format')} {b.version}",
            "run": b.run.get("id"),
            "stream": described.stream if described else b.run.get("stream"),
            "period": described.period if described else b.run.get("period"),
            "run_record_verified": described is not None,
            "run_record": described.to_json() if described else None,
            "algorithm": self.algorithm,
            "root": b.root.hex(),
            "leaves": b.leaves,
            "items": len(b.items),
            "items_in_run": described.items if described else None,
            "whole_run": whole,
            "previous": _previous_info(b),
            "scope": scope,
        }
        if b.errors:
            # NOTE: the errors list is not authenticated; it can only add a warning.
            self.warnings.append(
                f"the run was partial: {len(b.errors)} file(s) could not be read when "
                "it was attested; nothing in this bundle proves their content"
            )
        verdict = decide(checks)
        logger.info("bundle %s verdict %s", b.path, verdict.value)
        return BundleReport(str(b.path), verdict, checks, self.warnings, info)

    def check_trust(self) -> list[Check]:
        self.roots_given = bool(self.trust_roots)
        if self.trust_roots:
            names = ", ".join(c.subject.rfc4514_string() for c in self.trust_roots)
            return [Check("trust root", True, f"given: {names}")]
        self.trust_roots = [c for c in self.bundle.certificates() if _is_self_signed(c)]
        self.warnings.append(NO_TRUST_ROOT_WARNING)
        return [Check("trust root", None, NO_TRUST_ROOT_CHECK)]

    def check_timestamps(self) -> list[Check]:
        b = self.bundle
        untrusted = b.certificates()
        checks: list[Check] = []
        verdicts: list[Verdict] = []
        for entry in b.timestamps:
            token, found = self.check_timestamp(entry, untrusted)
            checks += found
            verdicts.append(token)
        checks.append(_timestamps_summary(verdicts, checks, self.roots_given))
        return checks

    def check_timestamp(
        self, entry: ManifestTimestamp, untrusted: list[x509.Certificate]
    ) -> tuple[Verdict, list[Check]]:
        label = f"{entry.tsa} ({entry.file})"
        try:
            response = self.bundle.read(entry.file)
            report = verify_token(
                response,
                digest=self.bundle.root,
                hash_algorithm=self.algorithm,
                trust_roots=self.trust_roots,
                untrusted=untrusted,
            )
        except (NotFoundError, BundleFormatError, TokenFormatError) as exc:
            check = Check("timestamp", False, f"{label}: {exc.message}")
            return Verdict.INVALID, [advisory(check)]
        if report.info is not None:
            self.tokens.add(load_token(response))
        checks = [advisory(_token_check(label, report))]
        checks.append(check_timestamp_record(entry, report))
        return report.verdict, checks

    def check_item(self, item: ManifestItem, target: _Target | None) -> list[Check]:
        label = item.path
        checks = [check_item_record(item, self.algorithm)]
        content_digest = item.content_digest
        if target is not None:
            content_check, computed = check_item_content(item, target, self.algorithm)
            checks.append(content_check)
            if computed is None:
                return checks
            content_digest = computed
        try:
            proof = self.bundle.read_proof(item)
        except NotaryError as exc:
            return [*checks, Check("item proof", False, exc.message, item=label)]
        checks.append(check_item_proof(self.bundle, item, proof, content_digest))
        if item.evidence_record is not None:
            checks.append(self.check_item_ers(item, proof.siblings))
        return checks

    def check_item_ers(self, item: ManifestItem, siblings: list[bytes]) -> Check:
        name = "item evidence record"
        assert item.evidence_record is not None
        try:
            der = self.bundle.read(item.evidence_record)
            if self.is_expected_ers(item, siblings, der):
                return Check(name, True, "same proof and token", item=item.path)
            algorithm, trees, token = parse_evidence_record(der)
        except NotaryError as exc:
            return Check(name, False, exc.message, item=item.path)
        # The data group's order is part of our format: content first, then record.
        expected = [[item.content_digest, item.record_digest]]
        expected += [[s] for s in siblings]
        if algorithm != self.algorithm or trees != expected:
            detail = "reduced hash tree differs from the item's proof"
            return Check(name, False, detail, item=item.path)
        if token not in self.tokens:
            detail = "its timestamp token is none of the bundle's tokens"
            return Check(name, False, detail, item=item.path)
        return Check(name, True, "same proof and token", item=item.path)

    def is_expected_ers(
        self, item: ManifestItem, siblings: list[bytes], der: bytes
    ) -> bool:
        """Tell whether ``der`` is exactly what notary writes for this item."""
        group = [item.content_digest, item.record_digest]
        return any(
            der == evidence_record(self.algorithm, group, siblings, token)
            for token in self.tokens
        )


def _scope(directory: Path | None, files: Sequence[Any], matched: int) -> str:
    if directory is not None:
        return f"directory {directory}"
    if files:
        return f"{matched} file(s)"
    return "internal consistency only"


def _previous_info(bundle: Bundle) -> dict[str, Any] | None:
    previous = bundle.previous
    if previous is None:
        return None
    return {"run": previous.run, "period": previous.period, "root": previous.root.hex()}


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# --- the checks -----------------------------------------------------------------------


def check_format(bundle: Bundle) -> Check:
    detail = f"{bundle.manifest.get('format')} {bundle.version}"
    if bundle.generator:
        detail += f", made by {bundle.generator}"
    return Check("bundle format", True, detail)


def _token_check(label: str, report: TokenReport) -> Check:
    info = report.info
    when = f", genTime {info.gen_time_raw}, serial {info.serial_hex}" if info else ""
    reasons = "; ".join(report.reasons)
    ok = {Verdict.VALID: True, Verdict.INVALID: False}.get(report.verdict)
    detail = f"{label}{when}: {report.verdict.value}"
    if reasons:
        detail += f" ({reasons})"
    facts: dict[str, Any] = {"tsa": label}
    if _has_no_path(report):
        facts["no_path"] = True
    return Check("timestamp", ok, detail, facts=facts)


def _has_no_path(report: TokenReport) -> bool:
    """Tell whether the token was undecided for want of a path to the given roots."""
    return report.verdict is Verdict.INDETERMINATE and any(
        c.name == "path" and c.ok is None and c.detail.startswith("no certification")
        for c in report.checks
    )


def _timestamps_summary(
    verdicts: list[Verdict], checks: list[Check], roots_given: bool
) -> Check:
    name = "timestamps"
    valid = verdicts.count(Verdict.VALID)
    if valid:
        return Check(name, True, f"{valid} of {len(verdicts)} token(s) valid")
    if Verdict.INDETERMINATE in verdicts:
        detail = f"no valid token; {verdicts.count(Verdict.INDETERMINATE)} undecided"
        tokens = [c for c in checks if c.name == "timestamp" and c.ok is None]
        if roots_given and tokens and all(c.facts.get("no_path") for c in tokens):
            return Check(
                name, None, f"{detail}: {NO_PATH_DETAIL}", facts={"no_path": True}
            )
        return Check(name, None, detail)
    return Check(
        name, False, f"no valid token (expected at least 1, got 0 of {len(verdicts)})"
    )


def check_timestamp_record(entry: ManifestTimestamp, report: TokenReport) -> Check:
    """Check that the manifest describes the token as it is (serial, genTime...)."""
    info = report.info
    name = "timestamp record"
    if info is None:
        return Check(name, None, f"{entry.file}: no token to compare with")
    claimed = {
        "serial": (entry.serial, info.serial_hex),
        "gen_time_raw": (entry.gen_time_raw, info.gen_time_raw),
        "policy": (entry.policy, info.policy),
        "hash_algorithm": (entry.hash_algorithm, info.hash_algorithm),
    }
    wrong = [
        f"{key} (expected {actual}, got {said})"
        for key, (said, actual) in claimed.items()
        if said is not None and said.lower() != actual.lower()
    ]
    if wrong:
        return Check(name, False, f"{entry.file}: manifest says " + "; ".join(wrong))
    return Check(name, True, f"{entry.file}: manifest matches the token")


@dataclass(frozen=True)
class RunRecord:
    """A parsed run record (kind ``run``): what the run's tree says about the run."""

    stream: str
    period: str
    algorithm: str
    items: int
    previous_period: str | None
    previous_root: bytes | None
    min_tokens: int

    @property
    def leaves(self) -> int:
        """Return the leaf count it implies: items, chain leaf, run leaf."""
        return self.items + (1 if self.previous_root is not None else 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "period": self.period,
            "algorithm": self.algorithm,
            "items": self.items,
            "previous_period": self.previous_period,
            "previous_root": self.previous_root.hex() if self.previous_root else None,
            "min_tokens": self.min_tokens,
        }


def parse_run_record(data: bytes) -> RunRecord:
    """Parse a canonical run record; ValueError names what is wrong.

    Parsing only: whether the record is in the tree is `check_run_record`'s business.
    """
    fields = record.decode(data)
    if fields.get("v") != 1 or fields.get("kind") != "run":
        raise ValueError(
            f"not a run record (v {fields.get('v')!r}, kind {fields.get('kind')!r})"
        )
    previous_root = _field(fields, "previous_root", str, None)
    try:
        root = None if previous_root is None else bytes.fromhex(previous_root)
    except ValueError as exc:
        raise ValueError(f"previous_root is not hex ({exc})") from exc
    size = DIGEST_SIZES.get(str(fields.get("algorithm")))
    if root is not None and len(root) != size:
        raise ValueError(f"previous_root is not a {fields.get('algorithm')} digest")
    return RunRecord(
        stream=_field(fields, "stream", str),
        period=_field(fields, "period", str),
        algorithm=_field(fields, "algorithm", str),
        items=_field(fields, "items", int),
        previous_period=_field(fields, "previous_period", str, None),
        previous_root=root,
        min_tokens=_field(fields, "min_tokens", int),
    )


_REQUIRED = object()


def _field(
    fields: dict[str, Any], key: str, kind: type, default: Any = _REQUIRED
) -> Any:
    value = fields.get(key)
    if value is None and default is not _REQUIRED:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{key} is not a {kind.__name__} (got {value!r})")
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{key} is negative (got {value})")
    return value


def check_run_record(bundle: Bundle) -> tuple[list[Check], RunRecord | None]:
    """Check that H(run record) is a leaf of the tree and the manifest agrees with it.

    Returns the checks and the run record, or None when it is not proven (then nothing
    else may rely on it).
    """
    name = "run record"
    try:
        proof = bundle.read_run_proof()
    except NotaryError as exc:
        return [Check(name, False, exc.message)], None
    if (proof.run_record, proof.root, proof.algorithm) != (
        bundle.run_record,
        bundle.root,
        bundle.algorithm,
    ):
        detail = f"{bundle.run_proof} names another record, root or algorithm"
        return [Check(name, False, detail)], None
    leaf = merkle.digest(bundle.algorithm, bundle.run_record)
    reached = merkle.root_from_proof(bundle.algorithm, [leaf], proof.siblings)
    if reached != bundle.root:
        detail = f"proof leads to {reached.hex()} (expected root {bundle.root.hex()})"
        return [Check(name, False, detail)], None
    try:
        described = parse_run_record(bundle.run_record)
    except (ValueError, RecursionError) as exc:
        return [Check(name, False, f"not a canonical run record ({exc})")], None
    detail = (
        f"in the tree: stream {described.stream}, period {described.period}, "
        f"{described.items} item(s)"
    )
    return [Check(name, True, detail), *_run_field_checks(bundle, described)], described


def _run_field_checks(bundle: Bundle, described: RunRecord) -> list[Check]:
    """Name each manifest field (run.stream, run.period, tree.algorithm) that lies."""
    claims = {
        "run.stream": (bundle.run.get("stream"), described.stream),
        "run.period": (bundle.run.get("period"), described.period),
        "tree.algorithm": (bundle.algorithm, described.algorithm),
    }
    return [
        Check(
            "run record",
            False,
            f"manifest {key} is {said!r} but the run record says {actual!r}",
            facts={"field": key},
        )
        for key, (said, actual) in claims.items()
        if said != actual
    ]


def check_token_count(described: RunRecord | None, tokens: int) -> list[Check]:
    """Advise when the bundle holds fewer tokens than the run needed to be sealed."""
    if described is None or described.min_tokens < 1:
        return []
    needed = described.min_tokens
    if tokens < needed:
        detail = (
            "bundle holds fewer tokens than the run was sealed with "
            f"(expected at least {needed}, got {tokens})"
        )
        return [advisory(Check("token count", False, detail))]
    detail = f"{tokens} token(s); the run was sealed with at least {needed}"
    return [advisory(Check("token count", True, detail))]


def check_previous(bundle: Bundle, described: RunRecord | None) -> list[Check]:
    """Check the chain link: the run record's previous root is a leaf (chain.json)."""
    name = "previous run"
    if described is not None:
        mismatch = _previous_mismatch(bundle, described)
        if mismatch:
            return [Check(name, False, mismatch)]
    previous = bundle.previous
    if previous is None:
        return []
    try:
        chain = bundle.read_chain()
    except NotaryError as exc:
        return [Check(name, False, exc.message)]
    if chain.previous_root != previous.root or chain.root != bundle.root:
        return [Check(name, False, "chain.json names other roots than the manifest")]
    leaf = merkle.chain_leaf(bundle.algorithm, previous.root)
    reached = merkle.root_from_proof(bundle.algorithm, [leaf], chain.siblings)
    if reached != bundle.root:
        detail = f"proof leads to {reached.hex()} (expected root {bundle.root.hex()})"
        return [Check(name, False, detail)]
    where = f"period {previous.period}" if described else "(unverified run record)"
    return [Check(name, True, f"root of {where} is a leaf of this tree")]


def _previous_mismatch(bundle: Bundle, described: RunRecord) -> str | None:
    previous = bundle.previous
    if described.previous_root is None:
        if previous is None:
            return None
        return "manifest names a previous run, but the run record has none"
    if previous is None:
        return (
            f"the run record links to period {described.previous_period} (root "
            f"{described.previous_root.hex()}), but the bundle has no chain proof"
        )
    if previous.root != described.previous_root:
        return (
            f"manifest previous.root is {previous.root.hex()} but the run record says "
            f"{described.previous_root.hex()}"
        )
    if previous.period != described.previous_period:
        return (
            f"manifest previous.period is {previous.period!r} but the run record says "
            f"{described.previous_period!r}"
        )
    return None


def is_whole(bundle: Bundle, described: RunRecord | None) -> bool:
    """Tell from the authenticated run record whether the bundle holds every item.

    Items are counted once each (a duplicated manifest entry adds nothing).
    """
    if described is None:
        return False
    distinct = {(i.content_digest, i.record_digest) for i in bundle.items}
    return described.items == len(distinct) == len(bundle.items)


def check_tree(bundle: Bundle, described: RunRecord | None, whole: bool) -> Check:
    """Check the leaf count against the run record; a whole bundle rebuilds the root."""
    name = "tree"
    if described is not None and described.leaves != bundle.leaves:
        detail = (
            f"manifest tree.leaves is {bundle.leaves} but the run record gives "
            f"{described.leaves}"
        )
        return Check(name, False, detail)
    if described is None:
        detail = "run record not proven: the bundle is treated as partial"
        return Check(name, None, detail)
    if not whole:
        detail = (
            f"partial bundle ({len(bundle.items)} of {described.items} items, per the "
            "run record): each item is checked by its own proof"
        )
        return Check(name, True, detail)
    return _rebuilt_root(bundle, described)


def _rebuilt_root(bundle: Bundle, described: RunRecord) -> Check:
    name = "tree"
    leaves = merkle.leaf_hashes(
        bundle.algorithm, [(i.content_digest, i.record_digest) for i in bundle.items]
    )
    if described.previous_root is not None:
        leaves.append(merkle.chain_leaf(bundle.algorithm, described.previous_root))
    leaves.append(merkle.digest(bundle.algorithm, bundle.run_record))
    try:
        root = merkle.HashTree(bundle.algorithm, leaves).root
    except NotaryError as exc:
        return Check(name, False, exc.message)
    if root != bundle.root:
        return Check(
            name, False, f"leaves give {root.hex()} (expected {bundle.root.hex()})"
        )
    return Check(name, True, f"all {bundle.leaves} leaves rebuild the root")


UNSTABLE_DETAIL = (
    "; the record says the item was changing while it was read: the digests are of "
    "what was read"
)


def check_item_record(item: ManifestItem, algorithm: str) -> Check:
    """Check the metadata record: its digest, canonical form, the path it names and
    the status (``unstable`` is authenticated by the record, not the manifest)."""
    ok, detail, unstable = _record_problem(item, algorithm)
    if ok and unstable:
        detail += UNSTABLE_DETAIL
    return Check("item record", ok, detail, item=item.path, warning=ok and unstable)


def _record_problem(item: ManifestItem, algorithm: str) -> tuple[bool, str, bool]:
    actual = merkle.digest(algorithm, item.record)
    if actual != item.record_digest:
        expected = item.record_digest.hex()
        return (
            False,
            f"digest {actual.hex()} of the record (expected {expected})",
            False,
        )
    try:
        fields = record.decode(item.record)
        named = record.display_name(record.name_bytes(fields))
    except (ValueError, KeyError, UnicodeDecodeError, RecursionError) as exc:
        return False, f"not a canonical metadata record ({exc})", False
    if named != item.path:
        return False, f"record names {named!r} (expected {item.path!r})", False
    unstable = fields.get("unstable") is True
    expected = "unstable" if unstable else "ok"
    if item.status != expected:
        detail = (
            f"manifest status {item.status!r} contradicts the record "
            f"(expected {expected!r})"
        )
        return False, detail, unstable
    return True, "digest matches the metadata record", unstable


def check_item_proof(
    bundle: Bundle, item: ManifestItem, proof: Any, content_digest: bytes
) -> Check:
    """Check the item's proof file and that its group, recomputed, leads to the root."""
    name = "item proof"
    mismatch = _proof_mismatch(bundle, item, proof)
    if mismatch:
        return Check(
            name,
            False,
            f"{item.proof} differs from the manifest ({mismatch})",
            item=item.path,
        )
    record_digest = merkle.digest(bundle.algorithm, item.record)
    group = [content_digest, record_digest]
    reached = merkle.root_from_proof(bundle.algorithm, group, proof.siblings)
    if reached != bundle.root:
        detail = f"leads to {reached.hex()} (expected root {bundle.root.hex()})"
        return Check(name, False, detail, item=item.path)
    levels = len(proof.siblings)
    return Check(name, True, f"leads to the root in {levels} step(s)", item=item.path)


def _proof_mismatch(bundle: Bundle, item: ManifestItem, proof: Any) -> str:
    pairs = {
        "algorithm": (proof.algorithm, bundle.algorithm),
        "root": (proof.root, bundle.root),
        "path": (proof.path, item.path),
        "record": (proof.record, item.record),
        "content_digest": (proof.content_digest, item.content_digest),
        "record_digest": (proof.record_digest, item.record_digest),
    }
    return ", ".join(key for key, (a, b) in pairs.items() if a != b)


# --- evidence files -------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """Where an item's evidence is on disk; ``unsafe`` when its name leaves --dir."""

    path: Path
    unsafe: bool = False


def _targets(
    bundle: Bundle, directory: Path | None, files: Sequence[tuple[Path, str | None]]
) -> dict[int, _Target]:
    if directory is not None and files:
        raise UsageError("verify: give --dir or --file, not both")
    if directory is not None:
        return _directory_targets(bundle, directory)
    targets: dict[int, _Target] = {}
    for path, name in files:
        if not os.path.lexists(path):
            raise NotFoundError(f"--file {path}: no such file", path=str(path))
        item = match_file(bundle.items, path, name)
        if item.n in targets:
            raise UsageError(f"--file {path}: item {item.path} is already given")
        targets[item.n] = _Target(path)
    return targets


def _directory_targets(bundle: Bundle, directory: Path) -> dict[int, _Target]:
    if not directory.is_dir():
        raise NotFoundError(
            f"--dir {directory}: no such directory", path=str(directory)
        )
    base = os.fsencode(directory)
    return {
        item.n: _Target(
            Path(os.fsdecode(os.path.join(base, item_name(item)))),
            unsafe=_leaves_directory(item_name(item)),
        )
        for item in bundle.items
    }


def _leaves_directory(name: bytes) -> bool:
    """Tell whether an item name is absolute or climbs out with ``..``."""
    return name.startswith(b"/") or b".." in name.split(b"/")


def item_name(item: ManifestItem) -> bytes:
    """Return the exact name bytes of an item (from its record, else its path)."""
    try:
        return record.name_bytes(record.decode(item.record))
    except (ValueError, KeyError, UnicodeDecodeError):
        return item.path.encode("utf-8", "surrogateescape")


def match_file(
    items: Sequence[ManifestItem], path: Path, name: str | None
) -> ManifestItem:
    """Return the item a ``--file PATH [--as NAME]`` means.

    With ``name`` the item is looked up by its path; else PATH, as given, is compared
    with item paths, then its trailing components (down to the basename) when exactly
    one item ends with them. Raises NotFoundError when nothing matches and UsageError
    (asking for ``--as``) when several items do.
    """
    by_name = {item_name(item): item for item in items}
    if name is not None:
        found = by_name.get(os.fsencode(name))
        if found is None:
            raise NotFoundError(f"--as {name}: no such item in the bundle", item=name)
        return found
    parts = [p for p in os.fsencode(os.path.normpath(path)).split(b"/") if p]
    for k in range(len(parts), 0, -1):
        suffix = b"/".join(parts[-k:])
        candidates = [
            item
            for key, item in by_name.items()
            if key == suffix or key.endswith(b"/" + suffix)
        ]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            listed = ", ".join(c.path for c in candidates[:5])
            raise UsageError(
                f"--file {path}: matches several items ({listed})",
                hint="name the item with --as ITEM",
                candidates=[c.path for c in candidates],
            )
    raise NotFoundError(
        f"--file {path}: no item of the bundle has this path",
        hint="name the item with --as ITEM",
        path=str(path),
    )


def check_item_content(
    item: ManifestItem, target: _Target, algorithm: str
) -> tuple[Check, bytes | None]:
    """Check one file against its item; return the check and the recomputed digest.

    The digest is None when the file could not be compared (missing, wrong kind).
    """
    name = "item content"
    if target.unsafe:
        detail = (
            "unsafe item name (absolute or with '..'): nothing outside --dir is read"
        )
        return Check(name, False, detail, item=item.path), None
    fields = _record_fields(item)
    try:
        kind, digest, size = _read_evidence(target, fields.get("kind"), algorithm)
    except FileNotFoundError:
        return Check(
            name, False, f"missing: no file at {target.path}", item=item.path
        ), None
    except OSError as exc:
        detail = f"cannot read {target.path} ({exc.strerror})"
        return Check(name, None, detail, item=item.path), None
    return _compare_content(item, fields, kind, digest, size), digest


def _record_fields(item: ManifestItem) -> dict[str, Any]:
    try:
        return dict(record.decode(item.record))
    except ValueError:
        return {}


def _read_evidence(
    target: _Target, kind: Any, algorithm: str
) -> tuple[str, bytes | None, int]:
    """Return (kind on disk, digest or None when of another kind, size).

    NOTE: never follows a symlink, with --dir as with --file: a regular-file item must
    be a regular file, not a link to one, in both modes.
    """
    info = os.lstat(target.path)
    if stat.S_ISLNK(info.st_mode):
        link = os.readlink(os.fsencode(target.path))
        return "symlink", merkle.digest(algorithm, link), len(link)
    if not stat.S_ISREG(info.st_mode):
        return "other", None, info.st_size
    with open(target.path, "rb") as handle:
        digest = hashlib.file_digest(handle, algorithm).digest()
    return "file", digest, info.st_size


def _compare_content(
    item: ManifestItem,
    fields: dict[str, Any],
    kind: str,
    digest: bytes | None,
    size: int,
) -> Check:
    name = "item content"
    expected_kind = "symlink" if fields.get("kind") == "symlink" else "file"
    if kind != expected_kind:
        found = "not a regular file or symlink" if kind == "other" else f"a {kind}"
        detail = f"changed: is {found} (expected a {expected_kind})"
        return Check(name, False, detail, item=item.path)
    expected_size = fields.get("size")
    if isinstance(expected_size, int) and size != expected_size:
        detail = f"changed: size {size} bytes (expected {expected_size})"
        return Check(name, False, detail, item=item.path, facts={"size": size})
    if digest != item.content_digest:
        detail = (
            f"changed: content digest {digest.hex() if digest else None} "
            f"(expected {item.content_digest.hex()})"
        )
        return Check(name, False, detail, item=item.path)
    return Check(name, True, "digest matches", item=item.path)


def check_extra_files(
    bundle: Bundle, directory: Path, described: RunRecord | None, whole: bool
) -> list[Check]:
    """Report every file under ``directory`` that is no item of the bundle.

    With --dir, valid means every file is proven: an extra file makes a whole-run
    bundle invalid and a partial one undecided. Files the manifest lists as errors or
    skipped stay undecided: those lists are not authenticated, so they excuse nothing.
    """
    known = {item_name(item) for item in bundle.items}
    listed = _listed_paths(bundle)
    checks = []
    for name in _walk_names(directory):
        if name in known:
            continue
        shown = record.display_name(name)
        checks.append(
            _extra_file_check(bundle, shown, listed.get(shown), described, whole)
        )
    if not checks:
        checks.append(Check("extra file", True, f"none under {directory}"))
    return checks


def _listed_paths(bundle: Bundle) -> dict[str, str]:
    """Map each path the manifest lists under errors/skipped to how it is listed."""
    listed: dict[str, str] = {}
    for key, how in (("errors", "unreadable"), ("skipped", "skipped")):
        for entry in getattr(bundle, key):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                listed.setdefault(entry["path"], how)
    return listed


def _extra_file_check(
    bundle: Bundle,
    shown: str,
    listed: str | None,
    described: RunRecord | None,
    whole: bool,
) -> Check:
    name = "extra file"
    if listed is not None:
        detail = f"listed as {listed} at attestation: its content is not attested"
        return Check(name, None, detail, item=shown)
    if not whole:
        counted = described.items if described else "an unknown number of"
        detail = (
            f"not covered by this bundle (it holds {len(bundle.items)} of "
            f"{counted} items of the run)"
        )
        return Check(name, None, detail, item=shown)
    detail = "extra file: not an item of the run (added or renamed)"
    return Check(name, False, detail, item=shown)


def _walk_names(directory: Path) -> Iterator[bytes]:
    """Yield the relative name bytes of each non-directory entry; links not followed."""
    base = os.fsencode(directory)
    for parent, dirs, files in os.walk(base):
        for entry in [
            *files,
            *(d for d in dirs if os.path.islink(os.path.join(parent, d))),
        ]:
            yield os.path.relpath(os.path.join(parent, entry), base).replace(
                os.sep.encode(), b"/"
            )


# --- anchors --------------------------------------------------------------------------


def check_anchors(bundle: Bundle, rpc_url: str | None) -> list[Check]:
    """Report each anchor on its own; anchors never decide the bundle's verdict."""
    checks: list[Check] = []
    for k, entry in enumerate(bundle.anchors, start=1):
        anchor = _anchor_record(bundle, entry)
        checks += [advisory(c) for c in _verify_anchor(anchor, bundle.root, rpc_url, k)]
    return checks


def _anchor_record(bundle: Bundle, entry: Any) -> dict[str, Any]:
    """Return the anchor receipt: its file when present, else the manifest entry."""
    if not isinstance(entry, dict):
        return {}
    name = entry.get("file")
    if isinstance(name, str) and name in bundle.names:
        try:
            loaded = json.loads(bundle.read(name))
        except (ValueError, NotaryError):
            return entry
        if isinstance(loaded, dict):
            return loaded
    return entry


def _verify_anchor(
    anchor: dict[str, Any], root: bytes, rpc_url: str | None, k: int
) -> list[Check]:
    from notary.anchor.verify import verify_anchor

    try:
        return list(verify_anchor(anchor, root, rpc_url))
    except NotaryError as exc:
        return [Check("anchor", None, f"anchor {k}: {exc.message}")]


# --- several bundles ------------------------------------------------------------------


def _bundle_summary(report: BundleReport) -> Check:
    ok = {Verdict.VALID: True, Verdict.INVALID: False}.get(report.verdict)
    where = f"{report.info.get('stream')} {report.info.get('period')}"
    failing = report.failing_items
    detail = f"{report.bundle} ({where}): {report.verdict.value}"
    if failing:
        detail += f"; failing: {', '.join(failing[:10])}"
    return Check("bundle", ok, detail, facts={"bundle": report.bundle})


def check_run_chain(reports: Sequence[BundleReport]) -> list[Check]:
    """Check that the runs of the bundles form one unbroken chain of periods.

    Only run records proven in their trees count: each run links to the one before
    by its run record's previous period and root.
    """
    unproven = [r for r in reports if not r.info.get("run_record")]
    checks = [
        Check(
            "run chain",
            False,
            f"{r.bundle}: run record not proven, cannot place it in the chain",
            item=r.bundle,
        )
        for r in unproven
    ]
    proven = [r for r in reports if r.info.get("run_record")]
    streams = {_described(r)["stream"] for r in proven}
    if len(streams) > 1:
        listed = ", ".join(sorted(str(s) for s in streams))
        return [
            *checks,
            Check("run chain", False, f"bundles of different streams: {listed}"),
        ]
    ordered = sorted(proven, key=lambda r: str(_described(r)["period"]))
    for before, after in itertools.pairwise(ordered):
        checks += _link_checks(before, after)
    return checks or [Check("run chain", True, "one bundle: no link to check")]


def _described(report: BundleReport) -> dict[str, Any]:
    described: dict[str, Any] = report.info["run_record"]
    return described


def _link_checks(before: BundleReport, after: BundleReport) -> list[Check]:
    first, second = _described(before)["period"], _described(after)["period"]
    if first == second:
        detail = f"two bundles for period {first}: {before.bundle}, {after.bundle}"
        return [Check("run chain", False, detail)]
    missing = _missing_periods(first, second)
    checks = [
        Check(
            "missing period",
            False,
            f"no bundle for period {p} (between {first} and {second})",
            item=p,
        )
        for p in missing
    ]
    checks.append(_link_check(before, after, missing))
    return checks


def _missing_periods(first: str, second: str) -> list[str]:
    try:
        between = period.between(period.following(first), period.previous(second))
    except UsageError:
        return []
    return between


def _link_check(before: BundleReport, after: BundleReport, missing: list[str]) -> Check:
    name = "run chain"
    first, second = _described(before)["period"], _described(after)["period"]
    linked = _described(after)
    root, named = linked["previous_root"], linked["previous_period"]
    if root is None:
        detail = f"{second} holds no previous root (expected the root of {first})"
        return Check(name, False, detail, item=str(second))
    if root == before.info.get("root") and named == first:
        return Check(name, True, f"{second} links to {first}: previous root matches")
    if missing and named in missing:
        detail = f"{second} links to period {named}, whose bundle is missing"
        return Check(name, False, detail, item=str(second))
    detail = (
        f"broken link: {second} names previous root {root} of period {named} "
        f"(expected {before.info.get('root')} of {first})"
    )
    return Check(name, False, detail, item=str(second))


# --- evidence records (.ers) ----------------------------------------------------------


def verify_evidence_record(
    path: Path,
    *,
    files: Sequence[tuple[Path, str | None]] = (),
    trust_roots: Sequence[x509.Certificate] = (),
) -> BundleReport:
    """Verify an RFC 4998 evidence record, and one file's content against it.

    There is no metadata record in an evidence record: only content is checked (said
    in the report's warnings). Raises EvidenceRecordError for unreadable records and
    UsageError for more than one file.
    """
    if len(files) > 1:
        raise UsageError("verify: an evidence record covers one file (give one --file)")
    try:
        algorithm, trees, token = parse_evidence_record(_read_file(path))
    except EvidenceRecordError as exc:
        raise EvidenceRecordError(
            f"{path}: not an evidence record ({exc.message})", path=str(path)
        ) from exc
    warnings = [NO_RECORD_WARNING]
    checks = [Check("evidence record format", True, f"RFC 4998, {algorithm}")]
    checks += _ers_content_checks(files, trees, algorithm, warnings)
    if not trust_roots:
        warnings.insert(0, NO_TRUST_ROOT_ERS_WARNING)
        detail = "none given: the token's certificate chain cannot be checked"
        checks.append(Check("trust root", None, detail))
    try:
        root, root_check = _ers_root_check(algorithm, trees, token)
        report = verify_token(
            token, digest=root, hash_algorithm=algorithm, trust_roots=trust_roots
        )
    except TokenFormatError as exc:
        checks.append(Check("timestamp", False, f"token: {exc.message}"))
        info = {"kind": "evidence-record", "algorithm": algorithm, "root": None}
        return BundleReport(str(path), decide(checks), checks, warnings, info)
    checks += [root_check, _token_check("token", report)]
    info = {"kind": "evidence-record", "algorithm": algorithm, "root": root.hex()}
    return BundleReport(str(path), decide(checks), checks, warnings, info)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFoundError(f"{path}: no such file", path=str(path)) from exc
    except OSError as exc:
        raise NotaryError(
            f"{path}: cannot read ({exc.strerror})", path=str(path)
        ) from exc


def _ers_content_checks(
    files: Sequence[tuple[Path, str | None]],
    trees: list[list[bytes]],
    algorithm: str,
    warnings: list[str],
) -> list[Check]:
    if not files:
        warnings.append(INTERNAL_ONLY)
        return []
    path = files[0][0]
    label = str(path)
    try:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, algorithm).digest()
    except FileNotFoundError as exc:
        raise NotFoundError(f"--file {path}: no such file", path=label) from exc
    except OSError as exc:
        raise NotaryError(f"--file {path}: cannot read ({exc.strerror})") from exc
    group = trees[0]
    if digest not in group:
        detail = f"changed: content digest {digest.hex()} is not in the evidence record"
        return [Check("item content", False, detail, item=label)]
    # Our records' data group is [content_digest, record_digest], in that order: a
    # file matching the second value and reading as a metadata record is the
    # item's public record, which must never pass for the item itself.
    if len(group) == 2 and digest == group[1] != group[0] and _is_record_file(path):
        return [Check("item content", False, METADATA_NOT_CONTENT, item=label)]
    detail = (
        "digest is the content value of the evidence record's data group"
        if digest == group[0]
        else "digest is in the evidence record's data group"
    )
    return [Check("item content", True, detail, item=label)]


def _is_record_file(path: Path) -> bool:
    """Tell whether a file parses as a canonical notary metadata record."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECORD_BYTES + 1)
        if len(data) > MAX_RECORD_BYTES:
            return False
        record.decode(data)
    except (OSError, ValueError, RecursionError):
        return False
    return True


def _ers_root_check(
    algorithm: str, trees: list[list[bytes]], token: bytes
) -> tuple[bytes, Check]:
    """Walk the reduced hash tree (RFC 4998 §4.3); compare with the token's imprint."""
    h = hashlib.new(algorithm, merkle.sortcat(*trees[0])).digest()
    if len(trees[0]) == 1:
        h = trees[0][0]
    for values in trees[1:]:
        h = hashlib.new(algorithm, merkle.sortcat(h, *values)).digest()
    imprint = token_info(token).imprint
    if h != imprint:
        detail = (
            f"reduced hash tree leads to {h.hex()} (expected imprint {imprint.hex()})"
        )
        return h, Check("item proof", False, detail)
    return h, Check(
        "item proof", True, "reduced hash tree leads to the token's imprint"
    )


def load_trust_roots(paths: Sequence[Path]) -> list[x509.Certificate]:
    """Return the certificates of ``--trust-root`` files (PEM or DER)."""
    roots: list[x509.Certificate] = []
    for path in paths:
        if not Path(path).is_file():
            raise NotFoundError(f"--trust-root {path}: no such file", path=str(path))
        try:
            roots += load_certificates(path)
        except TokenFormatError as exc:
            raise UsageError(f"--trust-root {exc.message}") from exc
    return roots
