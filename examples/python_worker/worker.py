#!/usr/bin/env python3
"""A complete Bosun worker in Python (psycopg 3), speaking the SQL worker protocol, version 1.

It shows the loop any language runs to get the guarantees of `bosun worker`: check the
protocol version; register and heartbeat well within the lease; claim due jobs and run one
handler per kind in a thread; end each attempt with bosun.complete_job or bosun.fail_job,
fenced by (id, attempt); ask bosun.lost_jobs every second which held jobs were cancelled or
taken over, and stop them; on SIGTERM give back what it holds and deregister. Environment:
DATABASE_URL, BOSUN_QUEUE (default "default"), BOSUN_WORKER_ID (python:<host>:<pid>),
BOSUN_LEASE_SECONDS (15), BOSUN_CONCURRENCY (4), BOSUN_POLL_SECONDS (1).
"""

import os
import signal
import socket
import sys
import threading

import psycopg

PROTOCOL_VERSION = 1
DATABASE_URL = os.environ["DATABASE_URL"]
QUEUE = os.environ.get("BOSUN_QUEUE", "default")
WORKER_ID = os.environ.get("BOSUN_WORKER_ID", f"python:{socket.gethostname()}:{os.getpid()}")
LEASE_SECONDS = float(os.environ.get("BOSUN_LEASE_SECONDS", "15"))
CONCURRENCY = int(os.environ.get("BOSUN_CONCURRENCY", "4"))
POLL_SECONDS = float(os.environ.get("BOSUN_POLL_SECONDS", "1"))


def log(message):
    sys.stdout.write(f"{WORKER_ID}: {message}\n")  # one write, so threads do not interleave
    sys.stdout.flush()


class Stopped(Exception):
    """Raised by a handler told to stop: its job was lost, or the worker is shutting down."""


# The handlers, by kind. Each gets the job's args and an Event set when it should stop.
def greet(args, stop):
    log(f"Hello, {args.get('name', 'world')}!")


def always_fail(args, stop):
    raise RuntimeError(args.get("message", "this kind always fails"))


def nap(args, stop):
    if stop.wait(float(args.get("seconds", 1))):
        raise Stopped()


HANDLERS = {"greet": greet, "always_fail": always_fail, "nap": nap}

# psycopg 3 connections may be shared by threads: each statement runs on its own.
db = psycopg.connect(DATABASE_URL, autocommit=True)
stopping = threading.Event()
held = {}  # (job id, attempt) -> the Event that tells the job's handler to stop
held_lock = threading.Lock()


def heartbeat():
    db.execute("SELECT bosun.worker_heartbeat(%s, %s::text[], %s::text[], %s, %s, %s)",
               (WORKER_ID, [QUEUE], list(HANDLERS), LEASE_SECONDS, socket.gethostname(),
                os.getpid()))


def held_arrays():
    """The held jobs' ids and attempts, as the protocol's pairwise arrays."""
    with held_lock:
        return [job_id for job_id, _ in held], [attempt for _, attempt in held]


def stop_lost_jobs():
    lost = {row[0] for row in db.execute(
        "SELECT bosun.lost_jobs(%s::bigint[], %s::int[])", held_arrays())}
    with held_lock:
        for (job_id, attempt), stop in held.items():
            if job_id in lost:
                log(f"job {job_id} attempt {attempt} was cancelled or taken over: stopping it")
                stop.set()


def every(seconds, action):
    """Run `action` every `seconds` on a thread of its own until the worker stops."""
    def loop():
        while not stopping.wait(seconds):
            try:
                action()
            except psycopg.Error as error:
                log(f"{action.__name__} failed: {error}")
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def run(job_id, attempt, kind, args, stop):
    lease = f"job {job_id} attempt {attempt}"
    try:
        HANDLERS[kind](args, stop)
    except Stopped:
        log(f"{lease} stopped")
    except Exception as error:  # any failure of a handler ends its attempt with an error
        failed = db.execute("SELECT state FROM bosun.fail_job(%s, %s, %s)",
                            (job_id, attempt, f"{type(error).__name__}: {error}")).fetchone()
        log(f"{lease} failed: now {failed[0]}" if failed else f"{lease} failed, but is lost")
    else:
        done = db.execute("SELECT bosun.complete_job(%s, %s)", (job_id, attempt)).fetchone()[0]
        log(f"{lease} completed" if done else f"{lease} finished, but is lost: nothing changed")
    finally:
        with held_lock:
            del held[(job_id, attempt)]


def claim(free):
    try:
        return db.execute("SELECT id, attempt, kind, args FROM bosun.claim(%s, %s::text[], %s)",
                          (WORKER_ID, [QUEUE], free)).fetchall()
    except psycopg.errors.ObjectNotInPrerequisiteState as error:  # the lease ran out
        log(f"not claiming until the next heartbeat: {error}")
        return []


def main():
    version = db.execute("SELECT bosun.protocol_version()").fetchone()[0]
    if version != PROTOCOL_VERSION:
        sys.exit(f"{WORKER_ID}: the database speaks worker protocol {version}, "
                 f"this worker speaks {PROTOCOL_VERSION}")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    heartbeat()
    keepers = [every(LEASE_SECONDS / 3, heartbeat), every(1, stop_lost_jobs)]
    log(f"working queue {QUEUE}, kinds {', '.join(HANDLERS)}")

    while not stopping.is_set():
        with held_lock:
            free = CONCURRENCY - len(held)
        for job_id, attempt, kind, args in claim(free) if free > 0 else []:
            stop = threading.Event()
            with held_lock:
                held[(job_id, attempt)] = stop
            log(f"job {job_id} attempt {attempt} ({kind}) claimed")
            threading.Thread(target=run, args=(job_id, attempt, kind, args, stop),
                             daemon=True).start()
        stopping.wait(POLL_SECONDS)

    for keeper in keepers:  # no heartbeat may register the worker again once it deregisters
        keeper.join()
    given = db.execute("SELECT bosun.give_back_jobs(%s::bigint[], %s::int[])", held_arrays())
    log(f"gave back jobs {[row[0] for row in given]}")
    with held_lock:
        for stop in held.values():
            stop.set()
    db.execute("SELECT bosun.worker_deregister(%s)", (WORKER_ID,))
    log("deregistered")


if __name__ == "__main__":
    main()
