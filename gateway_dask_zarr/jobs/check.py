"""`gateway-dask-zarr check [--repair] [--json] [--verify]`: an operator's audit of the store.

Exit codes:
  0  the store adds up (with --repair: every finding was repaired)
  1  findings remain
  2  the command line or the settings are wrong
  4  the store cannot be used
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from gateway_dask_zarr.env_values import ConfigError
from gateway_dask_zarr.errors import StoreUnavailable
from gateway_dask_zarr.jobs.audit import Audit, Repair
from gateway_dask_zarr.jobs.records import Records
from gateway_dask_zarr.settings import Settings
from gateway_dask_zarr.storage.arrays import JobStore
from gateway_dask_zarr.storage.backends import parse_storage

OK, FINDINGS, USAGE, UNAVAILABLE = 0, 1, 2, 4


def parser() -> argparse.ArgumentParser:
    """The command line of `check`."""
    main = argparse.ArgumentParser(
        prog="gateway-dask-zarr check",
        description="Check that the store adds up: records, index and usage entries, arrays and their chunks. "
        "It reads STORE_URL, S3_ENDPOINT_URL and AWS_* as the service does.",
        epilog=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    main.add_argument("--repair", action="store_true", help="fix what does not add up (docs/reliability.md)")
    main.add_argument("--json", action="store_true", help="print one JSON document for scripts")
    main.add_argument("--verify", action="store_true", help="also read every chunk and compare it with the rule")
    main.add_argument(
        "--grace",
        type=float,
        metavar="S",
        help="objects younger than S seconds are in flight, not findings (default: CLEANUP_GRACE_S)",
    )
    return main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; return its exit code."""
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE
    if settings.store_url is None:
        print("error: set STORE_URL (and S3_ENDPOINT_URL) to the store the service uses", file=sys.stderr)
        return USAGE
    backend = parse_storage(settings.store_url, settings.s3_endpoint_url)
    records, store = Records(backend), JobStore(backend)
    audit = Audit(records, store, settings.cleanup_grace_s if args.grace is None else args.grace)
    repair = Repair(records, store)
    try:
        findings = audit.findings(verify=args.verify)
        repairs = [repair(f) for f in findings] if args.repair else [None] * len(findings)
    except StoreUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return UNAVAILABLE
    left = sum(1 for done in repairs if done is None)
    if args.json:
        rows = [{**f.as_json(), "repaired": done} for f, done in zip(findings, repairs, strict=True)]
        print(
            json.dumps({"objects": audit.reads.listed, "documents_read": audit.reads.read, "findings": rows}, indent=2)
        )
    else:
        for finding, done in zip(findings, repairs, strict=True):
            print(finding.line() + (f"  [repaired: {done}]" if done else ""))
        print(
            f"{len(findings)} findings, {len(findings) - left} repaired, in {audit.reads.listed} objects "
            f"({audit.reads.read} documents read)"
        )
    return FINDINGS if left else OK


if __name__ == "__main__":
    sys.exit(main())
