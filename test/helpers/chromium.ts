/**
 * A real headless Chromium (Debian's, installed by .ci/run) driven over the DevTools protocol:
 * open a page, wait for something its script sets, read the DOM, take a screenshot. The browser is
 * this helper's own process (killed by its pid on close) with a throwaway profile.
 */
import { writeFileSync } from "node:fs";
import { tempDir, waitFor } from "./tmp.ts";

interface CdpReply {
  id?: number;
  result?: { result?: { value?: unknown }; data?: string; cssContentSize?: { width: number; height: number } };
  error?: { message: string };
}

export interface BrowserPage {
  /** Evaluates `expression` in the page and returns its (JSON) value. */
  evaluate<T>(expression: string): Promise<T>;
  /** Polls `expression` until it is truthy. */
  waitFor(expression: string, what: string, timeoutMs?: number): Promise<void>;
  /** The document as serialized now (what --dump-dom prints). */
  dom(): Promise<string>;
  /** A PNG of the whole page, written to `path`. */
  screenshot(path: string): Promise<void>;
  close(): Promise<void>;
}

export async function openPage(url: string, viewport = { width: 1500, height: 1000 }): Promise<BrowserPage> {
  const profile = tempDir("switchyard-chromium-");
  const chrome = Bun.spawn(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--remote-debugging-port=0", "--remote-allow-origins=*",
      `--user-data-dir=${profile.path}`, `--window-size=${viewport.width},${viewport.height}`, "about:blank"],
    { stdout: "ignore", stderr: "ignore" },
  );
  const close = async () => {
    chrome.kill();
    await chrome.exited;
    profile.cleanup();
  };
  try {
    // Chromium writes the port it chose (port 0) into the profile.
    const port = await waitFor("Chromium's DevTools port", async () => (await Bun.file(profile.file("DevToolsActivePort")).text().catch(() => "")).split("\n")[0], 20_000);
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { type: string; url: string; webSocketDebuggerUrl: string }[];
    const target = targets.find((t) => t.type === "page" && t.url === "about:blank")!;
    const ws = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("cannot connect to Chromium's DevTools"));
    });
    let nextId = 1;
    const waiting = new Map<number, (reply: CdpReply) => void>();
    ws.onmessage = (event) => {
      const reply = JSON.parse(String(event.data)) as CdpReply;
      if (reply.id !== undefined) waiting.get(reply.id)?.(reply);
    };
    const send = (method: string, params: Record<string, unknown> = {}) => {
      const id = nextId++;
      return new Promise<CdpReply>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${method}: no answer from Chromium`)), 20_000);
        waiting.set(id, (reply) => {
          clearTimeout(timer);
          waiting.delete(id);
          if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
          else resolve(reply);
        });
        ws.send(JSON.stringify({ id, method, params }));
      });
    };
    await send("Emulation.setDeviceMetricsOverride", { width: viewport.width, height: viewport.height, deviceScaleFactor: 1, mobile: false });
    await send("Page.enable");
    await send("Page.navigate", { url });
    const evaluate = async <T>(expression: string): Promise<T> => (await send("Runtime.evaluate", { expression, returnByValue: true })).result?.result?.value as T;
    return {
      evaluate,
      async waitFor(expression, what, timeoutMs = 15_000) {
        await waitFor(what, () => evaluate<boolean>(`Boolean(${expression})`).catch(() => false), timeoutMs);
      },
      dom: () => evaluate<string>("document.documentElement.outerHTML"),
      async screenshot(path) {
        // The whole page, not only the viewport.
        const size = (await send("Page.getLayoutMetrics")).result?.cssContentSize ?? viewport;
        const clip = { x: 0, y: 0, width: Math.max(viewport.width, Math.ceil(size.width)), height: Math.ceil(size.height), scale: 1 };
        const shot = await send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true, clip });
        writeFileSync(path, Buffer.from(shot.result!.data!, "base64"));
      },
      async close() {
        ws.close();
        await close();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}
