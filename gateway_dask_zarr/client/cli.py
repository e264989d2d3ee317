"""The `gateway-dask-zarr` command: run jobs with a progress bar, list, show and delete them, serve the app.

Exit codes, for scripts:
  0  done
  1  the job failed or was cancelled
  2  the command line is wrong (unknown option, a value that is not a number ...)
  3  the gateway refused the request (a 4xx other than 429: a bad parameter, no such job, no valid token)
  4  the gateway is unavailable: unreachable, a 5xx, or still busy (429) after --busy-wait seconds
  5  the job did not end within --timeout seconds (it goes on running)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gateway_dask_zarr.client.client import GatewayClient, GatewayError, JobFailed, RemoteJob
from gateway_dask_zarr.client.kinds import DeclaredKind, declared_kinds

OK, JOB_FAILED, USAGE, REFUSED, UNAVAILABLE, TIMED_OUT = 0, 1, 2, 3, 4, 5
# `serve` runs gunicorn with the settings shipped in the package, as `make run` does.
GUNICORN_ARGS = ["-c", "python:gateway_dask_zarr.server.gunicorn_conf", "gateway_dask_zarr.server.wsgi:app"]


def _ints(text: str) -> list[int]:
    """'1000,1000' -> [1000, 1000]; anything else is a usage error (exit 2)."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1000,1000, got {text!r}") from None


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _say(args: argparse.Namespace, value: Any, text: str) -> None:
    """`value` as JSON with --json, else a line for people."""
    if args.json:
        _print_json(value)
    else:
        print(text)


def _summary(job: RemoteJob, kind: DeclaredKind) -> str:
    """The job's kind, its output's layout and the kind's parameters it has, and what was written."""
    d = job.document
    names = dict.fromkeys(["shape", "chunks", "dtype", *kind.parameters])
    shown = [f"{n} {json.dumps(d[n]) if isinstance(d[n], list) else d[n]}" for n in names if d.get(n) is not None]
    return (
        f"job {job.id} {job.status} in {d.get('seconds')} s: {kind.name}, {', '.join(shown)}, "
        f"{d.get('chunks_written')} chunks, {d.get('bytes_written')} bytes"
    )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _chosen(args: argparse.Namespace) -> tuple[DeclaredKind, dict[str, Any]]:
    """The kind --kind names (else the default) and the parameters given; a usage error (exit 2) if it takes not one."""
    kinds: list[DeclaredKind] = args.kinds
    kind = next(k for k in kinds if (k.name == args.kind if args.kind else k.default))
    given = {n: getattr(args, n) for k in kinds for n in k.parameters if getattr(args, n) is not None}
    foreign = [n for n in given if n not in kind.parameters]
    if foreign:
        takes = ", ".join(_flag(n) for n in kind.parameters)
        args.usage(f"{_flag(foreign[0])} is not a parameter of kind {kind.name}; it takes {takes}")
    return kind, given


def cmd_run(gateway: GatewayClient, args: argparse.Namespace) -> int:
    """Submit a job, follow it, and print its array's URL (or its document with --json)."""
    kind, given = _chosen(args)
    job = gateway.submit(kind=args.kind, **given)
    if args.no_wait:
        _say(args, job.document, job.id)
        return OK
    try:
        job.wait(progress=not args.json and not args.quiet, timeout=args.timeout)
    except JobFailed:
        if args.json:
            _print_json(job.document)
        raise
    if args.json:
        _print_json(job.document)
    else:
        print(_summary(job, next((k for k in args.kinds if k.name == job.document.get("kind")), kind)))
        if job.document.get("endpoint_url"):
            print(f"S3 endpoint: {job.document['endpoint_url']}")
        print(job.url)
    return OK


def cmd_jobs(gateway: GatewayClient, args: argparse.Namespace) -> int:
    """List the caller's jobs, newest first."""
    jobs = gateway.list(limit=args.limit)
    if args.json:
        _print_json([j.document for j in jobs])
        return OK
    for job in jobs:
        d = job.document
        shape = "x".join(str(n) for n in d["shape"])
        print(f"{job.id}  {job.status:<9}  {shape:<16} {d['dtype']:<8} {d.get('created') or ''}")
    return OK


def cmd_show(gateway: GatewayClient, args: argparse.Namespace) -> int:
    """Print one job's document."""
    _print_json(gateway.get(args.id).document)
    return OK


def cmd_delete(gateway: GatewayClient, args: argparse.Namespace) -> int:
    """Cancel or delete one job."""
    gateway.delete(args.id)
    _say(args, {"id": args.id, "deleted": True}, f"deleted {args.id}")
    return OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Replace this process by gunicorn with the package's settings and app, as `make run` does."""
    os.environ.update({"HOST": args.host, "PORT": str(args.port)})
    # exec, not a child: signals (SIGTERM, Ctrl-C) reach gunicorn itself, which stops the cluster.
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", *GUNICORN_ARGS])  # noqa: S606
    return OK  # not reached


def cmd_check(rest: Sequence[str]) -> int:
    """Replace this process by the store's audit, which runs beside the server with the service's settings."""
    # A separate module: the client speaks HTTP only, the audit reads the store (docs/architecture.md).
    os.execv(sys.executable, [sys.executable, "-m", "gateway_dask_zarr.jobs.check", *rest])  # noqa: S606
    return OK  # not reached


def _common() -> argparse.ArgumentParser:
    """The options every command that speaks to the gateway takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the gateway's URL (default: $GATEWAY_URL, else http://127.0.0.1:8000)")
    common.add_argument("--token", help="an API token (default: $GATEWAY_TOKEN, else $JUPYTERHUB_API_TOKEN)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts (no progress bar)")
    common.add_argument(
        "--busy-wait", type=float, default=300.0, metavar="S", help="retry a busy gateway (429) for up to S seconds"
    )
    return common


def _value(schema: dict[str, Any]) -> Callable[[str], Any]:
    """How a flag's text becomes the JSON value its schema says: a list of integers, an integer, or text."""
    values: dict[str, Callable[[str], Any]] = {"array": _ints, "integer": int}
    return values.get(schema.get("type", ""), str)


def _kind_flags(run: argparse.ArgumentParser, kinds: list[DeclaredKind], unreadable: GatewayError | None) -> None:
    """--kind and one flag per parameter the gateway's kinds declare, each naming the kinds that take it."""
    takers: dict[str, list[str]] = {}
    for kind in kinds:
        for name in kind.parameters:
            takers.setdefault(name, []).append(kind.name)
    default = next((k.name for k in kinds if k.default), "random")
    run.add_argument("--kind", choices=[k.name for k in kinds] or None, help=f"the job kind (default {default})")
    for name, names in takers.items():
        schema = next(k.parameters[name] for k in kinds if name in k.parameters)
        text = schema.get("description", "").replace("%", "%%")
        run.add_argument(
            _flag(name),
            dest=name,
            type=_value(schema),
            choices=schema.get("enum"),
            metavar="N,N" if schema.get("type") == "array" else None,
            help=f"{text} [{', '.join(names)}]",
        )
    lines = [f"  {k.name}: {k.help}\n    {' '.join(_flag(n) for n in k.parameters)}" for k in kinds]
    if unreadable is None:
        run.epilog = "job kinds and their parameters (from the gateway's /openapi.json):\n" + "\n".join(lines)
    else:
        run.epilog = (
            f"The job kinds' flags come from the gateway's /openapi.json, which could not be read: {unreadable}"
        )
    run.set_defaults(kinds=kinds, usage=run.error)


def parser(kinds: Sequence[DeclaredKind] = (), unreadable: GatewayError | None = None) -> argparse.ArgumentParser:
    """The command line: one sub-command each for run, jobs, show, delete, serve and check; run's flags from `kinds`."""
    common = _common()
    main = argparse.ArgumentParser(
        prog="gateway-dask-zarr",
        description="Run and read jobs of a gateway-dask-zarr service.",
        epilog=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = main.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        parents=[common],
        help="run a job with a progress bar; print its array's URL",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _kind_flags(run, list(kinds), unreadable)
    run.add_argument("--timeout", type=float, help="stop waiting after this many seconds (exit 5)")
    run.add_argument("--no-wait", action="store_true", help="print the job's id and return at once")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)
    jobs = commands.add_parser("jobs", parents=[common], help="list your jobs, newest first")
    jobs.add_argument("--limit", type=int)
    jobs.set_defaults(handler=cmd_jobs)
    for name, handler, text in (
        ("show", cmd_show, "print one job's document"),
        ("delete", cmd_delete, "cancel or delete a job"),
    ):
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("id")
        sub.set_defaults(handler=handler)
    serve = commands.add_parser("serve", help="serve the app with gunicorn, as `make run` does")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.set_defaults(handler=None)
    # Listed here for --help; its own options are the audit's (main() hands them over unparsed).
    commands.add_parser("check", help="check that the store adds up (--repair, --json, --verify; see check --help)")
    return main


def exit_code(error: GatewayError) -> int:
    """The exit code for a refusal or failure (see the module's docstring)."""
    if isinstance(error, JobFailed):
        return JOB_FAILED
    if error.status is not None and 400 <= error.status < 500 and error.status != 429:
        return REFUSED
    return UNAVAILABLE


def _declared(argv: Sequence[str]) -> tuple[list[DeclaredKind], GatewayError | None]:
    """For `run`, the gateway's job kinds (its flags follow from them), or why they could not be read; else none."""
    if argv[:1] != ["run"]:
        return [], None
    known, _ = _common().parse_known_args(argv[1:])
    try:
        return declared_kinds(GatewayClient(known.url, known.token, busy_wait=known.busy_wait)), None
    except GatewayError as error:
        return [], error


def _refused(error: GatewayError, as_json: bool) -> int:
    """Say why the gateway refused or failed (on stderr, and as JSON with --json); the exit code."""
    if as_json and not isinstance(error, JobFailed):
        _print_json({"error": {"status": error.status, "code": error.code, "message": error.message}})
    print(f"error: {error}", file=sys.stderr)
    return exit_code(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:
        return cmd_check(argv[1:])
    kinds, unreadable = _declared(argv)
    # Without the kinds, `run --help` still helps (and says why); a run itself cannot go on.
    if unreadable is not None and not {"-h", "--help"} & set(argv):
        return _refused(unreadable, as_json="--json" in argv)
    args = parser(kinds, unreadable).parse_args(argv)
    if args.command == "serve":
        return cmd_serve(args)
    gateway = GatewayClient(args.url, args.token, busy_wait=args.busy_wait)
    handler: Callable[[GatewayClient, argparse.Namespace], int] = args.handler
    try:
        return handler(gateway, args)
    except GatewayError as error:
        return _refused(error, args.json)
    except TimeoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return TIMED_OUT
    except KeyboardInterrupt:
        print("interrupted; a submitted job goes on running (see: gateway-dask-zarr jobs)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`jobs --json | head`): stop quietly, as a shell tool does. Python
        # flushes stdout again at exit, so it is pointed at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def entry() -> None:
    """The console script."""
    sys.exit(main())
