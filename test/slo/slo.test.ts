/** SLO windows (budget, burn rates) with time given, and the generated Prometheus rules checked and exercised by promtool. */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { validateConfig } from "../../src/config/load.ts";
import { sloRules } from "../../src/slo/rules.ts";
import { SloSchema } from "../../src/slo/schema.ts";
import { SloWindows } from "../../src/slo/windows.ts";
import { CLI, writeTempConfig } from "../helpers/cli.ts";
import { tempDir } from "../helpers/tmp.ts";

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 11, 1);

describe("windows", () => {
  test("burn rates per window and the budget left over the SLO window", () => {
    const w = new SloWindows(SloSchema.parse({ availability: "99%", latency: { threshold: "300ms", target: "90%" }, window: "1d" }));
    // 7 hours ago: 1,000 requests, 20 failed (outside every burn window, inside the day).
    w.add(T0 - 7 * 60 * MINUTE, 1000, 20, 0);
    // The last 10 minutes: 100 requests a minute, 5 failed, 30 slow.
    for (let m = 9; m >= 0; m--) w.add(T0 - m * MINUTE, 100, 5, 30);
    const s = w.status(T0);
    // 5m: 500 requests, 25 failed = 5% against a 1% budget.
    expect(s.availability!.burn_rates["5m"]).toBeCloseTo(5);
    expect(s.availability!.burn_rates["1h"]).toBeCloseTo(5);
    // Over the day: 70 of 2,000 failed = 3.5%, 3.5 budgets: 2.5 overspent.
    expect(s.availability!.budget_remaining).toBeCloseTo(1 - 3.5);
    expect(s.latency!.burn_rates["30m"]).toBeCloseTo(0.3 / 0.1);
    expect(s.latency!.budget_remaining).toBeCloseTo(1 - 300 / 2000 / 0.1);
    // A day later everything has left every window.
    const later = w.status(T0 + 25 * 60 * MINUTE);
    expect(later.availability).toMatchObject({ budget_remaining: 1, burn_rates: { "5m": 0, "30m": 0, "1h": 0, "6h": 0 } });
  });

  test("hours restored from the state file count toward the budget", () => {
    const w = new SloWindows(SloSchema.parse({ availability: "99.9%" }));
    w.restoreHour(Math.floor(T0 / 3_600_000) - 48, [10_000, 5, 0]);
    expect(w.status(T0).availability!.budget_remaining).toBeCloseTo(0.5);
    expect(w.status(T0).availability!.burn_rates["6h"]).toBe(0);
  });
});

describe("slo-rules", () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());
  const config = validateConfig("t", {
    listeners: [{ port: 0 }],
    routes: [
      { name: "orders", to: "v1", slo: { availability: "99.9%", latency: { threshold: "300ms", target: "99%" }, window: "30d" } },
      { name: "search", to: "v1", slo: { latency: { threshold: "1s", target: "95%" }, window: "7d" } },
      { name: "plain", to: "v1" },
    ],
    clusters: { v1: { endpoints: ["127.0.0.1:1"] } },
  });
  const rules = sloRules(config)!;
  const rulesFile = dir.file("rules.yaml");
  writeFileSync(rulesFile, rules);

  const run = async (args: string[]) => {
    const p = Bun.spawn(["promtool", ...args], { stdout: "pipe", stderr: "pipe", cwd: dir.path });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, text: out + err };
  };

  test("promtool check rules passes; one group per SLO route, the standard pairs with their factors", async () => {
    const check = await run(["check", "rules", rulesFile]);
    expect(check.text).toContain("SUCCESS: 18 rules found");
    expect(check.code).toBe(0);
    const parsed = Bun.YAML.parse(rules) as { groups: { name: string; rules: { alert?: string; expr: string }[] }[] };
    expect(parsed.groups.map((g) => g.name)).toEqual(["switchyard-slo-orders", "switchyard-slo-search"]);
    const exprs = parsed.groups.flatMap((g) => g.rules.filter((r) => r.alert).map((r) => r.expr));
    expect(exprs).toEqual([
      'switchyard_slo:error_ratio:rate1h{route="orders"} > 0.0144 and switchyard_slo:error_ratio:rate5m{route="orders"} > 0.0144',
      'switchyard_slo:error_ratio:rate6h{route="orders"} > 0.006 and switchyard_slo:error_ratio:rate30m{route="orders"} > 0.006',
      'switchyard_slo:slow_ratio:rate1h{route="orders"} > 0.144 and switchyard_slo:slow_ratio:rate5m{route="orders"} > 0.144',
      'switchyard_slo:slow_ratio:rate6h{route="orders"} > 0.06 and switchyard_slo:slow_ratio:rate30m{route="orders"} > 0.06',
      // 7 days: 2% of the budget in 1h is a 3.36× burn; 5% in 6h, 1.4×.
      'switchyard_slo:slow_ratio:rate1h{route="search"} > 0.168 and switchyard_slo:slow_ratio:rate5m{route="search"} > 0.168',
      'switchyard_slo:slow_ratio:rate6h{route="search"} > 0.07 and switchyard_slo:slow_ratio:rate30m{route="search"} > 0.07',
    ]);
  });

  test("promtool test rules: a simulated burn fires both pairs, summed over instances; a healthy route fires nothing", async () => {
    const parsed = Bun.YAML.parse(rules) as { groups: { rules: { alert?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[] };
    const alert = (route: string, sli: string, long: string) => {
      const rule = parsed.groups.flatMap((g) => g.rules).find((r) => r.alert && r.labels!.sli === sli && r.labels!.long_window === long && r.annotations!.summary!.includes(` ${route} `))!;
      return { exp_labels: rule.labels, exp_annotations: rule.annotations };
    };
    const series = (name: string, route: string, instance: string, perMinute: number) => ({ series: `${name}{route="${route}",instance="${instance}"}`, values: `0+${perMinute}x120` });
    const tests = {
      rule_files: ["rules.yaml"],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: [
            // orders: two instances, 1,200 requests a minute, 60 failed (5%: 50× the 0.1% budget); 1% slow (the budget exactly).
            series("switchyard_slo_requests_total", "orders", "a", 600),
            series("switchyard_slo_requests_total", "orders", "b", 600),
            series("switchyard_slo_errors_total", "orders", "a", 60),
            series("switchyard_slo_errors_total", "orders", "b", 0),
            series("switchyard_slo_slow_requests_total", "orders", "a", 12),
            // search: 2% slow against a 5% budget: healthy.
            series("switchyard_slo_requests_total", "search", "a", 1000),
            series("switchyard_slo_slow_requests_total", "search", "a", 20),
          ],
          alert_rule_test: [
            { eval_time: "10m", alertname: "SwitchyardErrorBudgetBurn", exp_alerts: [alert("orders", "availability", "1h"), alert("orders", "availability", "6h")] },
          ],
        },
        {
          interval: "1m",
          input_series: [
            series("switchyard_slo_requests_total", "orders", "a", 1000),
            series("switchyard_slo_errors_total", "orders", "a", 0),
            series("switchyard_slo_slow_requests_total", "orders", "a", 5),
          ],
          alert_rule_test: [{ eval_time: "30m", alertname: "SwitchyardErrorBudgetBurn", exp_alerts: [] }],
        },
        {
          interval: "1m",
          input_series: [
            // search: 20% slow against 5%: 4×, above the 1h pair's 3.36× and the 6h pair's 1.4×.
            series("switchyard_slo_requests_total", "search", "a", 1000),
            series("switchyard_slo_slow_requests_total", "search", "a", 200),
          ],
          alert_rule_test: [{ eval_time: "15m", alertname: "SwitchyardErrorBudgetBurn", exp_alerts: [alert("search", "latency", "1h"), alert("search", "latency", "6h")] }],
        },
      ],
    };
    writeFileSync(dir.file("tests.yaml"), Bun.YAML.stringify(tests, null, 2));
    const result = await run(["test", "rules", "tests.yaml"]);
    expect(result.text).toContain("SUCCESS");
    expect(result.code).toBe(0);
  });

  test("the README's complete example gives rules promtool accepts, as the README shows them", async () => {
    const readme = await Bun.file(`${import.meta.dir}/../../README.md`).text();
    const block = /### A complete example[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
    const text = sloRules(validateConfig("README.md", Bun.YAML.parse(block), { ADMIN_TOKEN: "an-admin-token-of-16+" }))!;
    writeFileSync(dir.file("readme-rules.yaml"), text);
    const check = await run(["check", "rules", "readme-rules.yaml"]);
    expect(check.text).toContain("SUCCESS: 12 rules found");
    expect(text).toContain('expr: "switchyard_slo:error_ratio:rate1h{route=\\"orders\\"} > 0.0144 and switchyard_slo:error_ratio:rate5m{route=\\"orders\\"} > 0.0144"');
    expect(text).toContain("summary: Route orders burns its availability error budget 14.4x too fast");
    expect(readme).toContain('expr: "switchyard_slo:error_ratio:rate1h{route=\\"orders\\"} > 0.0144 and switchyard_slo:error_ratio:rate5m{route=\\"orders\\"} > 0.0144"');
  });

  test("the CLI prints the same rules, and says so when no route has an SLO", async () => {
    const withSlo = writeTempConfig({ listeners: [{ port: 0 }], routes: [{ name: "orders", to: "v1", slo: { availability: "99.9%" } }], clusters: { v1: { endpoints: ["127.0.0.1:1"] } } });
    const without = writeTempConfig({ listeners: [{ port: 0 }], routes: [{ to: "v1" }], clusters: { v1: { endpoints: ["127.0.0.1:1"] } } });
    const cli = async (file: string) => {
      const p = Bun.spawn([process.execPath, CLI, "slo-rules", file], { stdout: "pipe", stderr: "pipe" });
      return { out: await new Response(p.stdout).text(), err: await new Response(p.stderr).text(), code: await p.exited };
    };
    const ok = await cli(withSlo.file);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('expr: "switchyard_slo:error_ratio:rate1h{route=\\"orders\\"} > 0.0144 and');
    const none = await cli(without.file);
    expect(none).toEqual({ out: "", err: `${without.file}: no route declares an slo\n`, code: 1 });
    withSlo.cleanup();
    without.cleanup();
  });
});
