"""Bouncy Castle's RFC 4998 code checks our evidence records and recomputes our roots.

One small Java program (ErsCheck.java, beside this file) is compiled against Debian's
Bouncy Castle jars and run once for every check of this module:

- each exported ``items/NNNNNN.ers`` is validated by ``ERSEvidenceRecord`` against the
  item's content alone, against the data group (content, metadata record), and its token
  against the built-in TSA's CA at the token's genTime;
- Bouncy Castle's ``ERSArchiveTimeStampGenerator``, fed the same data groups (and the
  previous run's root as a data object of its own), asks to timestamp our root.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from notary.bundle import BundleContent, write_bundle
from notary.tsa.server import BuiltinTSA
from tests.bundlekit import Evidence, content_of, evidence_of, write_files
from tests.conftest import require, require_tool

JAVA_DIR = Path("/usr/share/java")
JARS = [JAVA_DIR / f"{name}.jar" for name in ("bcprov", "bcpkix", "bcutil")]
SOURCE = Path(__file__).with_name("ErsCheck.java")


@dataclass
class Case:
    """One exported bundle with the evidence it was made from."""

    name: str
    content: BundleContent
    evidence: list[Evidence]
    bundle: Path


@pytest.fixture(scope="module")
def ers_check(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Compile ErsCheck.java; return the command that runs it."""
    javac = require_tool("javac")
    java = require_tool("java")
    require(
        all(jar.is_file() for jar in JARS),
        "Bouncy Castle jars are missing (Debian libbcprov-java libbcpkix-java "
        "libbcutil-java)",
    )
    classes = tmp_path_factory.mktemp("ers-check")
    classpath = os.pathsep.join(str(jar) for jar in JARS)
    subprocess.run(
        [javac, "-d", str(classes), "-cp", classpath, str(SOURCE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return [java, "-cp", f"{classpath}{os.pathsep}{classes}", "ErsCheck"]


def _case(
    root: Path, tsa: BuiltinTSA, name: str, files: dict[str, bytes], **options: object
) -> Case:
    evidence = evidence_of(write_files(root / name, files))
    content = content_of(evidence, tsa, **options)  # type: ignore[arg-type]
    bundle = root / f"{name}.zip"
    write_bundle(content, bundle)
    return Case(name, content, evidence, bundle)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    root = tmp_path_factory.mktemp("bundles")
    tsa = BuiltinTSA.open(root / "tsa")
    logs = {f"logs/{k:02d}.log": b"event %d\n" % k * (k + 1) for k in range(12)}
    logs["logs/empty.log"] = b""
    previous = {"run": 7, "period": "2026-10", "root": bytes(range(32))}
    return [
        _case(root, tsa, "chained-sha256", logs, previous=previous, period="2026-11"),
        _case(
            root, tsa, "single-sha512", {"only.bin": b"\x00\xff"}, algorithm="sha512"
        ),
        _case(
            root,
            tsa,
            "three-sha384",
            {"a": b"a", "b": b"b", "c": b"c"},
            algorithm="sha384",
        ),
    ]


@pytest.fixture(scope="module")
def bc_results(
    cases: list[Case], ers_check: list[str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Run every Bouncy Castle check in one JVM; return task name → "OK" or reason."""
    work = tmp_path_factory.mktemp("bc-tasks")
    tsa_ca = cases[0].bundle.parent / "tsa" / "ca.pem"
    tasks = []
    for case in cases:
        tasks += _verify_tasks(case, work, tsa_ca)
        tasks.append(_root_task(case, work))
    tasks.append(_tampered_task(cases[0], work, tsa_ca))
    (work / "tasks.txt").write_text("".join("\t".join(t) + "\n" for t in tasks))

    run = subprocess.run(
        [*ers_check, str(work / "tasks.txt")],
        capture_output=True,
        text=True,
        timeout=300,
    )

    results = {}
    for line in run.stdout.splitlines():
        status, _, rest = line.partition(" ")
        name, _, reason = rest.partition(": ")
        results[name] = "OK" if status == "OK" else reason
    assert len(results) == len(tasks), run.stderr
    return results


def _verify_tasks(case: Case, work: Path, tsa_ca: Path) -> list[list[str]]:
    tasks = []
    with zipfile.ZipFile(case.bundle) as archive:
        for item, evidence in zip(case.content.items, case.evidence, strict=True):
            stem = work / f"{case.name}-{item.n}"
            _write(stem.with_suffix(".ers"), archive.read(f"items/{item.n:06d}.ers"))
            _write(stem.with_suffix(".content"), evidence.content)
            _write(stem.with_suffix(".record"), item.record)
            tasks.append(
                [
                    "verify",
                    f"{case.name}/{item.path}",
                    str(stem.with_suffix(".ers")),
                    str(stem.with_suffix(".content")),
                    str(stem.with_suffix(".record")),
                    str(tsa_ca),
                ]
            )
    return tasks


def _root_task(case: Case, work: Path) -> list[str]:
    """Feed BC's generator each item as a data group of (content, record)."""
    lines = []
    for item in case.content.items:
        stem = work / f"{case.name}-{item.n}"
        lines += [f"{item.n}\t{stem}.content", f"{item.n}\t{stem}.record"]
    if case.content.previous is not None:
        # The previous root is a data object of its own: BC hashes it to H(root).
        previous = _write(
            work / f"{case.name}-previous.root", case.content.previous["root"]
        )
        lines.append(f"previous\t{previous}")
    # So is the run record: BC hashes it to H(run_record), the run leaf.
    described = _write(work / f"{case.name}-run.record", case.content.run_record)
    lines.append(f"run\t{described}")
    groups = _write(work / f"{case.name}-groups.txt", "\n".join(lines).encode())
    algorithm = case.content.algorithm
    return [
        "root",
        f"{case.name}/root",
        algorithm,
        case.content.root.hex(),
        str(groups),
    ]


def _tampered_task(case: Case, work: Path, tsa_ca: Path) -> list[str]:
    """A negative control: BC must reject content that differs by one byte."""
    stem = work / f"{case.name}-1"
    content = bytearray(stem.with_suffix(".content").read_bytes())
    content[0] ^= 0x01
    tampered = _write(work / "tampered.content", bytes(content))
    ers, record = stem.with_suffix(".ers"), stem.with_suffix(".record")
    return ["verify", "tampered", str(ers), str(tampered), str(record), str(tsa_ca)]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_bouncycastle_validates_every_evidence_record(
    cases: list[Case], bc_results: dict[str, str]
) -> None:
    verified = {name: r for name, r in bc_results.items() if "/" in name}
    expected = {f"{c.name}/{i.path}" for c in cases for i in c.content.items}

    failures = {
        name: r for name, r in verified.items() if r != "OK" and "/root" not in name
    }

    assert expected <= set(verified)
    assert failures == {}


def test_bouncycastle_generator_computes_our_root(
    cases: list[Case], bc_results: dict[str, str]
) -> None:
    roots = {c.name: bc_results[f"{c.name}/root"] for c in cases}

    assert roots == {c.name: "OK" for c in cases}


def test_bouncycastle_rejects_tampered_content(bc_results: dict[str, str]) -> None:
    assert "object hash not found" in bc_results["tampered"]
