#!/usr/bin/env node
// A complete Bosun worker in Node.js (pg), speaking the SQL worker protocol, version 1.
//
// It shows the loop any language runs to get the guarantees of `bosun worker`: check the
// protocol version; register and heartbeat well within the lease; poll for due jobs and run
// one handler per kind; end each attempt with bosun.complete_job or bosun.fail_job, fenced
// by (id, attempt); ask bosun.lost_jobs every second which held jobs were cancelled or taken
// over, and abort them; on SIGTERM give back what it holds and deregister.
// Environment: DATABASE_URL, BOSUN_QUEUE (default "default"),
// BOSUN_WORKER_ID (node:<host>:<pid>), BOSUN_LEASE_SECONDS (15), BOSUN_CONCURRENCY (4),
// BOSUN_POLL_SECONDS (1).
'use strict';

const os = require('os');
const { setTimeout: sleep } = require('timers/promises');
const { Client } = require('pg');

const PROTOCOL_VERSION = 1;
const env = process.env;
const queue = env.BOSUN_QUEUE || 'default';
const workerId = env.BOSUN_WORKER_ID || `node:${os.hostname()}:${process.pid}`;
const leaseSeconds = Number(env.BOSUN_LEASE_SECONDS || 15);
const concurrency = Number(env.BOSUN_CONCURRENCY || 4);
const pollSeconds = Number(env.BOSUN_POLL_SECONDS || 1);

const log = (message) => console.log(`${workerId}: ${message}`);

// The handlers, by kind. Each gets the job's args and an AbortSignal raised when it should stop.
const handlers = {
  greet: async (args) => log(`Hello, ${args.name ?? 'world'}!`),
  always_fail: async (args) => {
    throw new Error(args.message ?? 'this kind always fails');
  },
  nap: (args, signal) => sleep(1000 * (args.seconds ?? 1), undefined, { signal }),
};

// One connection: pg runs its queries one after another, in the order they were made.
const db = new Client({ connectionString: env.DATABASE_URL });
const held = new Map(); // "id/attempt" -> { id, attempt, controller }

const heldArrays = () => {
  const jobs = [...held.values()];
  return [jobs.map((job) => job.id), jobs.map((job) => job.attempt)];
};

async function heartbeat() {
  await db.query('SELECT bosun.worker_heartbeat($1, $2, $3, $4, $5, $6)',
    [workerId, [queue], Object.keys(handlers), leaseSeconds, os.hostname(), process.pid]);
}

async function stopLostJobs() {
  const { rows } = await db.query('SELECT bosun.lost_jobs($1, $2) AS id', heldArrays());
  const lost = new Set(rows.map((row) => row.id));
  for (const job of held.values()) {
    if (lost.has(job.id)) {
      log(`job ${job.id} attempt ${job.attempt} was cancelled or taken over: stopping it`);
      job.controller.abort();
    }
  }
}

async function run(job) {
  const lease = `job ${job.id} attempt ${job.attempt}`;
  const key = `${job.id}/${job.attempt}`;
  const controller = new AbortController();
  held.set(key, { id: job.id, attempt: job.attempt, controller });
  try {
    await handlers[job.kind](job.args, controller.signal);
    const { rows } = await db.query('SELECT bosun.complete_job($1, $2) AS done',
      [job.id, job.attempt]);
    log(rows[0].done ? `${lease} completed` : `${lease} finished, but is lost: nothing changed`);
  } catch (error) {
    if (controller.signal.aborted) {
      log(`${lease} stopped`);
      return;
    }
    // Any failure of a handler ends its attempt with an error.
    const { rows } = await db.query('SELECT state FROM bosun.fail_job($1, $2, $3)',
      [job.id, job.attempt, String(error)]);
    log(rows.length ? `${lease} failed: now ${rows[0].state}` : `${lease} failed, but is lost`);
  } finally {
    held.delete(key);
  }
}

async function main() {
  await db.connect();
  const { rows } = await db.query('SELECT bosun.protocol_version() AS version');
  if (rows[0].version !== PROTOCOL_VERSION) {
    console.error(`${workerId}: the database speaks worker protocol ${rows[0].version}, ` +
      `this worker speaks ${PROTOCOL_VERSION}`);
    process.exit(1);
  }
  let stopping = false;
  let wake = () => {};
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => { stopping = true; wake(); });
  }
  const report = (what) => (error) => log(`${what} failed: ${error.message}`);
  await heartbeat();
  const timers = [
    setInterval(() => heartbeat().catch(report('heartbeat')), (leaseSeconds * 1000) / 3),
    setInterval(() => stopLostJobs().catch(report('lost jobs check')), 1000),
  ];
  log(`working queue ${queue}, kinds ${Object.keys(handlers).join(', ')}`);

  while (!stopping) {
    const free = concurrency - held.size;
    if (free > 0) {
      try {
        const claimed = await db.query(
          'SELECT id, attempt, kind, args FROM bosun.claim($1, $2, $3)', [workerId, [queue], free]);
        for (const job of claimed.rows) {
          log(`job ${job.id} attempt ${job.attempt} (${job.kind}) claimed`);
          run(job).catch(report(`job ${job.id}`));
        }
      } catch (error) {
        if (error.code !== '55000') throw error; // 55000: the lease ran out; the next beat renews it
        log(`not claiming until the next heartbeat: ${error.message}`);
      }
    }
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, pollSeconds * 1000);
    });
  }

  // Queries run in order: a heartbeat already asked for runs before the deregistration.
  timers.forEach(clearInterval);
  const given = await db.query('SELECT bosun.give_back_jobs($1, $2) AS id', heldArrays());
  log(`gave back jobs [${given.rows.map((row) => row.id).join(', ')}]`);
  for (const job of held.values()) job.controller.abort();
  await db.query('SELECT bosun.worker_deregister($1)', [workerId]);
  log('deregistered');
  await db.end();
}

main().catch((error) => {
  console.error(`${workerId}: ${error.stack}`);
  process.exit(1);
});
