"""`factlocate doctor`: what a bug report needs (versions, the lock, the device, the self-checks)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("doctor", help="versions, lock, device and a self-check: paste its output into bug reports")
    p.add_argument("--no-check", action="store_true", help="skip the self-check on a tiny model")
    p.set_defaults(func=run_doctor)


def run_doctor(args) -> int:
    from factlocate.doctor import report

    for line in report(check=not args.no_check):
        print(line, flush=True)
    return 0
