// One BullMQ run of a workload written by bench/queue_vs_bullmq.py; prints one JSON line.
//   node bench.mjs <workload.json> <concurrency> <redis-url>
// workload.json: {"stores": S, "messages": [[store, chat, seq, duration_ms], ...]} in enqueue order.
// Every job goes to `messages-store-<store>` (BullMQ refuses `:` in names) before any worker starts; then one
// Worker per store queue at <concurrency> runs them. Output: seconds from the workers' start to the last
// completion, and the completion order (indexes into messages).
import { readFileSync } from "node:fs";
import { Queue, Worker } from "bullmq";

const [file, concurrencyArg, redisUrl] = process.argv.slice(2);
const { stores, messages } = JSON.parse(readFileSync(file, "utf8"));
const url = new URL(redisUrl);
const connection = {
  host: url.hostname,
  port: Number(url.port || 6379),
  db: Number(url.pathname.slice(1) || 0),
  maxRetriesPerRequest: null,
};
const name = (n) => `messages-store-${n}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const jobs = Array.from({ length: stores }, () => []);
messages.forEach(([store], i) => jobs[store].push({ name: "inbound", data: { i }, opts: { removeOnComplete: true } }));
const queues = jobs.map((_, n) => new Queue(name(n), { connection }));
await Promise.all(queues.map((queue, n) => queue.addBulk(jobs[n])));

const order = [];
let ended = 0;
let finish;
const finished = new Promise((resolve) => (finish = resolve));
const process_ = async (job) => {
  await sleep(messages[job.data.i][3]);
  order.push(job.data.i);
  if (order.length === messages.length) {
    ended = performance.now();
    finish();
  }
};
const concurrency = Number(concurrencyArg);
const workers = queues.map((_, n) => new Worker(name(n), process_, { connection, concurrency, autorun: false }));
await Promise.all(workers.map((worker) => worker.waitUntilReady()));
const started = performance.now();
for (const worker of workers) worker.run().catch((err) => console.error(err));
await finished;
await Promise.all([...workers, ...queues].map((x) => x.close()));
console.log(JSON.stringify({ seconds: (ended - started) / 1000, order }));
