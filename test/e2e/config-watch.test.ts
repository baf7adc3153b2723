/**
 * The config file watcher, on the real CLI process, through the ways files are really replaced:
 * written in place, replaced by rename (editors, Ansible), and swapped through a `..data` symlink
 * (Kubernetes ConfigMaps) — several times in a row, each save exactly one reload.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ProxyProcess, spawnProxy } from "../helpers/cli.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const CHANGES = 4;
const UNCHANGED = "config file unchanged; not reloaded (SIGHUP reloads anyway)";

let upstream: Upstream;
beforeAll(() => {
  upstream = startUpstream(() => new Response("ok"));
});
afterAll(() => upstream.stop(true));

function configText(tag: string): string {
  return JSON.stringify({
    listeners: [{ address: "127.0.0.1", port: 0 }],
    routes: [{ name: "r", to: "up", headers: { response: { set: { "x-config": tag } } } }],
    clusters: { up: { endpoints: [upstream.origin] } },
    access_log: { enabled: false },
  }, null, 2);
}

const reloads = (proxy: ProxyProcess) => proxy.events.filter((e) => e.msg === "config reloaded");

/** The save that makes `version` has been reloaded, once: every earlier save made exactly one reload, and the proxy serves `tag`. */
async function expectReloaded(proxy: ProxyProcess, version: number, tag: string): Promise<void> {
  await waitFor(`config version ${version} (reloads so far: ${reloads(proxy).map((e) => e.version).join(", ")})`, () => reloads(proxy).some((e) => e.version === version));
  expect(reloads(proxy).map((e) => e.version)).toEqual(Array.from({ length: version - 1 }, (_, i) => i + 2));
  expect((await fetch(`${proxy.origin}/x`)).headers.get("x-config")).toBe(tag);
}

/**
 * Starts the proxy on `file` (as `setup` lays it out with the first config), then saves `CHANGES`
 * new configs with `save`, one after the other, each awaited as one reload; then saves the same
 * content again (not reloaded, said in the log) and one more change (reloaded).
 */
function watchScenario(name: string, setup: (dir: string, text: string) => string, save: (dir: string, file: string, text: string, n: number) => void) {
  describe(name, () => {
    let dir: ReturnType<typeof tempDir>;
    let proxy: ProxyProcess;
    let file: string;
    beforeAll(async () => {
      dir = tempDir();
      file = setup(dir.path, configText("v1"));
      proxy = await spawnProxy(file);
    });
    afterAll(async () => {
      await proxy.stop();
      dir.cleanup();
    });

    test(`${CHANGES} saves in a row: each one reloads, once`, async () => {
      for (let n = 1; n <= CHANGES; n++) {
        save(dir.path, file, configText(`v${n + 1}`), n);
        await expectReloaded(proxy, n + 1, `v${n + 1}`);
      }
    }, 30_000);

    test("a save with the same content is not a reload (and the log says so); the next change is", async () => {
      const before = proxy.events.length;
      save(dir.path, file, configText(`v${CHANGES + 1}`), CHANGES + 1);
      await proxy.waitForEvent(UNCHANGED, before);
      save(dir.path, file, configText("last"), CHANGES + 2);
      await expectReloaded(proxy, CHANGES + 2, "last");
    }, 30_000);
  });
}

watchScenario(
  "written in place",
  (dir, text) => {
    writeFileSync(join(dir, "cfg.yaml"), text);
    return join(dir, "cfg.yaml");
  },
  (_dir, file, text) => writeFileSync(file, text),
);

watchScenario(
  "replaced by rename (a temp file renamed over the config, as editors and Ansible do)",
  (dir, text) => {
    writeFileSync(join(dir, "cfg.yaml"), text);
    return join(dir, "cfg.yaml");
  },
  (dir, file, text, n) => {
    const tmp = join(dir, `.cfg.yaml.${n}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  },
);

/** Kubernetes' atomic writer: cfg.yaml → ..data/cfg.yaml, ..data → a timestamped directory, replaced by renaming a new ..data_tmp link over it. */
const stamp = (n: number) => `..2026_01_01_00_00_${String(n).padStart(2, "0")}.000000001`;
watchScenario(
  "a ConfigMap volume (the ..data symlink swapped to a new directory)",
  (dir, text) => {
    mkdirSync(join(dir, stamp(0)));
    writeFileSync(join(dir, stamp(0), "cfg.yaml"), text);
    symlinkSync(stamp(0), join(dir, "..data"));
    symlinkSync("..data/cfg.yaml", join(dir, "cfg.yaml"));
    return join(dir, "cfg.yaml");
  },
  (dir, _file, text, n) => {
    mkdirSync(join(dir, stamp(n)));
    writeFileSync(join(dir, stamp(n), "cfg.yaml"), text);
    symlinkSync(stamp(n), join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    rmSync(join(dir, stamp(n - 1)), { recursive: true });
  },
);
