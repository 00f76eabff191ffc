"""Commands of the ``anchor`` group: deploy, status, upgrade.

The anchoring modules (web3) are imported inside the handlers, so other commands start
without loading them.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from notary.cli._common import load_settings, print_json, printable
from notary.errors import EXIT_OK

if TYPE_CHECKING:
    from notary.store import Store

DEPLOY_HELP = """\
Deploy the RootRegistry contract with the account of [anchor] key_env (or keystore).
Then put the printed contract address and chain id in the config:

  [anchor]
  rpc_url = "<the same RPC URL>"
  chain_id = <chain id>
  contract = "<address>"
"""


def register(commands: Any, groups: dict[str, Any]) -> None:
    anchor = groups["anchor"]
    deploy = anchor.add_parser(
        "deploy",
        help="deploy the anchor contract",
        description=DEPLOY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    deploy.add_argument(
        "--rpc",
        metavar="URL",
        help="JSON-RPC URL of the node (default: [anchor] rpc_url)",
    )
    deploy.add_argument(
        "--chain-id", type=int, metavar="ID", help="refuse a node of another chain"
    )
    deploy.add_argument("--json", action="store_true", help="print one JSON document")
    deploy.set_defaults(handler=cmd_deploy)

    status = anchor.add_parser("status", help="list anchors and their state")
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.set_defaults(handler=cmd_status)

    upgrade = anchor.add_parser(
        "upgrade", help="advance pending anchors once (the scheduler does it too)"
    )
    upgrade.add_argument("--json", action="store_true", help="print one JSON document")
    upgrade.set_defaults(handler=cmd_upgrade)


def cmd_deploy(args: argparse.Namespace) -> int:
    from notary.anchor import deploy

    settings = load_settings()
    result = deploy(settings, args.rpc or settings.anchor.rpc_url, args.chain_id)
    if args.json:
        print_json(result)
        return EXIT_OK
    print(f"contract  {result['contract']}")
    print(f"chain id  {result['chain_id']}")
    print(f"tx        {result['tx_hash']} (block {result['block_number']})")
    print(f"sender    {result['sender']}")
    print("put in the config:")
    print("  [anchor]")
    print(f"  chain_id = {result['chain_id']}")
    print(f'  contract = "{result["contract"]}"')
    if result["local"]:
        print("note: a development chain: its anchors prove nothing to third parties")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from notary.anchor import status
    from notary.anchor.service import missing_report

    settings = load_settings()
    store = _open_store(settings.database_url)
    entries = status(settings, store)
    missing = missing_report(settings, store)
    if args.json:
        print_json({"anchors": entries, "missing": missing})
        return EXIT_OK
    if not entries and not missing:
        print("no anchors")
        return EXIT_OK
    _print_entries(entries)
    for entry in missing:
        name = printable(f"{entry['stream']} {entry['period']}")
        reason = printable(entry["reason"])
        print(f"   - {entry['run']:>5} not anchored ({reason})  [{name}]")
    return EXIT_OK


def cmd_upgrade(args: argparse.Namespace) -> int:
    from notary.anchor.service import upgrade

    settings = load_settings()
    report = upgrade(settings, _open_store(settings.database_url))
    if args.json:
        print_json(report)
        return EXIT_OK
    if not report["anchors"] and not report["skipped"]:
        print("nothing to do: no open anchors and no run waiting for one")
        return EXIT_OK
    _print_entries(report["anchors"])
    for skipped in report["skipped"]:
        what = f"run {skipped['run']}" if skipped["run"] is not None else ""
        if skipped["anchor"] is not None:
            what = f"anchor {skipped['anchor']} {what}".strip()
        print(f"skipped {what}: {printable(skipped['reason'])}")
    return EXIT_OK


def _open_store(url: str) -> Store:
    from notary.store import Store

    return Store(url)


def _print_entries(entries: list[dict[str, Any]]) -> None:
    if not entries:
        return
    print(f"{'id':>4} {'run':>5} {'state':<9} {'chain':>15} {'block':>9}  tx")
    for entry in entries:
        block = entry["block_number"] if entry["block_number"] is not None else "-"
        line = (
            f"{entry['id']:>4} {entry['run']:>5} {printable(entry['state']):<9} "
            f"{entry['chain_id']:>15} {block:>9}  {printable(entry['tx_hash'] or '-')}"
        )
        if entry["last_error"]:
            line += f"  ({printable(entry['last_error'])})"
        print(line)
