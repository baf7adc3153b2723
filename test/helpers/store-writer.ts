/** A worker process for the write-loss test: inserts N rows one by one, prints how many were acknowledged. */
import { openStore } from "../../src/store/client.ts";

const [path, worker, count] = process.argv.slice(2);
const store = await openStore(path!);
let acknowledged = 0;
let failed = 0;
for (let i = 0; i < Number(count); i++) {
  try {
    await store.execute("INSERT INTO leases (lease_key, owner, expires_at) VALUES (?, ?, ?)", [`w${worker}-${i}`, `worker-${worker}`, 0]);
    acknowledged++;
  } catch {
    failed++;
  }
}
store.close();
console.log(JSON.stringify({ acknowledged, failed }));
