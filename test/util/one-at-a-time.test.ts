/** One reload at a time: calls during a run are not lost in it. */
import { expect, test } from "bun:test";
import { oneAtATime } from "../../src/util/one-at-a-time.ts";
import { waitFor } from "../helpers/tmp.ts";

test("oneAtATime: a call during a run gets one follow-up run (arguments merged), never folded into the running one", async () => {
  const runs: boolean[] = [];
  const gates: (() => void)[] = [];
  const run = oneAtATime(async (force: boolean) => {
    runs.push(force);
    await new Promise<void>((resolve) => gates.push(resolve));
    return runs.length;
  }, (a, b) => a || b);
  const first = run(false);
  const second = run(false);
  const third = run(true);
  expect(runs).toEqual([false]);
  gates.shift()!();
  expect(await first).toBe(1);
  await waitFor("the follow-up run", () => runs.length === 2);
  expect(runs).toEqual([false, true]);
  gates.shift()!();
  expect(await second).toBe(2);
  expect(await third).toBe(2);
  expect(runs).toHaveLength(2);
});
