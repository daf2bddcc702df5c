/**
 * A small Prometheus metrics registry: {@linkcode Counter}, {@linkcode Gauge} and
 * {@linkcode Histogram} with labels, rendered in the Prometheus text exposition format (version
 * 0.0.4), which every Prometheus-compatible scraper reads.
 *
 * @example Count and time reconciles
 * ```ts
 * import { Registry } from "@denokube/kube";
 *
 * const registry = new Registry();
 * const reconciles = registry.counter({
 *   name: "reconcile_total",
 *   help: "Reconciles by controller and result.",
 *   labelNames: ["controller", "result"],
 * });
 * reconciles.inc({ controller: "foo", result: "success" });
 * console.log(registry.expose());
 * ```
 *
 * @module
 */

/** Label values of one series, by label name. */
export type Labels = Record<string, string>;

/** What every metric is created with. */
export interface MetricOptions {
  /** The metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total`, units are base units (`_seconds`, `_bytes`). */
  name: string;
  /** One line of help text. */
  help: string;
  /** The label names every series of this metric has (default none). */
  labelNames?: readonly string[];
}

/** Options of {@linkcode Histogram}. */
export interface HistogramOptions extends MetricOptions {
  /** Upper bounds of the buckets, increasing; `+Inf` is added. Default {@linkcode DEFAULT_BUCKETS}. */
  buckets?: readonly number[];
}

/** The default histogram buckets (seconds), those of the Prometheus client libraries. */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
]);

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * The parts every metric kind shares: name, help, label names, and the series by label values.
 * Create metrics through a {@linkcode Registry}.
 *
 * @typeParam S The state of one series.
 */
export abstract class Metric<S> {
  /** The metric name. */
  readonly name: string;
  /** The help text. */
  readonly help: string;
  /** The label names. */
  readonly labelNames: readonly string[];
  /** The series, by their rendered label set. */
  protected readonly series: Map<string, { labels: Labels; value: S }> = new Map();

  /**
   * Checks the name, help text and label names.
   *
   * @param options Name, help and label names.
   * @param reserved Label names the metric kind uses itself (`le` for histograms).
   */
  constructor(options: MetricOptions, reserved: readonly string[] = []) {
    if (typeof options?.name !== "string" || !METRIC_NAME.test(options.name)) {
      throw new TypeError(
        `Invalid metric name ${
          JSON.stringify(options?.name)
        }: use letters, digits, '_' and ':', not starting with a digit`,
      );
    }
    if (typeof options.help !== "string" || options.help === "") {
      throw new TypeError(`Metric ${options.name} needs a help text`);
    }
    const labelNames = [...(options.labelNames ?? [])];
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || reserved.includes(label)) {
        throw new TypeError(
          `Metric ${options.name}: invalid label name ${JSON.stringify(label)}${
            reserved.includes(label) ? ` (reserved by the ${reserved.join(", ")} label)` : ""
          }`,
        );
      }
    }
    if (new Set(labelNames).size !== labelNames.length) {
      throw new TypeError(`Metric ${options.name}: duplicate label names in ${labelNames}`);
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = labelNames;
  }

  /** The metric type in the exposition format. */
  abstract readonly type: "counter" | "gauge" | "histogram";

  /**
   * Renders the series' sample lines.
   *
   * @param out The lines to append to.
   */
  protected abstract samples(out: string[]): void;

  /**
   * Looks up (or creates) the series for a label set, after checking the labels.
   *
   * @param labels The labels: exactly the metric's label names, with string values.
   * @param init The state of a new series.
   * @param create Whether a new series is stored (false for reads).
   * @returns The series.
   */
  protected at(
    labels: Labels | undefined,
    init: () => S,
    create = true,
  ): { labels: Labels; value: S } {
    const given = labels ?? {};
    const keys = Object.keys(given);
    if (
      keys.length !== this.labelNames.length || this.labelNames.some((l) => !(l in given))
    ) {
      throw new TypeError(
        `Metric ${this.name} takes the labels [${this.labelNames.join(", ")}], got [${
          keys.join(", ")
        }]`,
      );
    }
    const ordered: Labels = {};
    for (const name of this.labelNames) {
      const value = given[name];
      if (typeof value !== "string") {
        throw new TypeError(
          `Metric ${this.name}: label ${name} must be a string, got ${typeof value}`,
        );
      }
      ordered[name] = value;
    }
    const key = renderLabels(ordered);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: ordered, value: init() };
      if (create) this.series.set(key, entry);
    }
    return entry;
  }

  /**
   * Removes one series (e.g. of a controller that was stopped).
   *
   * @param labels The series' labels.
   * @returns Whether it existed.
   */
  remove(labels: Labels = {}): boolean {
    const ordered: Labels = {};
    for (const name of this.labelNames) ordered[name] = labels[name] ?? "";
    return this.series.delete(renderLabels(ordered));
  }

  /** Removes every series. */
  reset(): void {
    this.series.clear();
  }

  /**
   * Renders this metric in the text exposition format.
   *
   * @returns The `# HELP`, `# TYPE` and sample lines, each ending in a newline.
   */
  render(): string {
    const out = [
      `# HELP ${this.name} ${escapeHelp(this.help)}`,
      `# TYPE ${this.name} ${this.type}`,
    ];
    this.samples(out);
    return out.join("\n") + "\n";
  }
}

/**
 * A value that only goes up (reconciles, retries, restarts). Its name should end in `_total`.
 *
 * @example
 * ```ts
 * import { Registry } from "@denokube/kube";
 * const c = new Registry().counter({ name: "retries_total", help: "Retries." });
 * c.inc();
 * console.log(c.get()); // 1
 * ```
 */
export class Counter extends Metric<number> {
  /** Always `counter`. */
  readonly type = "counter" as const;

  /**
   * Adds to the counter.
   *
   * @param labels The series' labels (all of the metric's label names).
   * @param by How much to add (≥ 0, default 1).
   * @throws {RangeError} When `by` is negative or not a number.
   */
  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) {
      throw new RangeError(`Counter ${this.name} can only go up: inc(${by}) is not allowed`);
    }
    this.at(labels, () => 0).value += by;
  }

  /**
   * Reads a series.
   *
   * @param labels The series' labels.
   * @returns Its value (0 when it was never incremented).
   */
  get(labels?: Labels): number {
    return this.at(labels, () => 0, false).value;
  }

  /**
   * Renders the samples.
   *
   * @param out The lines to append to.
   */
  protected samples(out: string[]): void {
    for (const { labels, value } of this.series.values()) {
      out.push(`${this.name}${renderLabels(labels)} ${formatValue(value)}`);
    }
  }
}

/**
 * A value that goes up and down (queue depth, leader status).
 *
 * @example
 * ```ts
 * import { Registry } from "@denokube/kube";
 * const g = new Registry().gauge({ name: "queue_depth", help: "Items queued.", labelNames: ["name"] });
 * g.set({ name: "foo" }, 3);
 * ```
 */
export class Gauge extends Metric<number> {
  /** Always `gauge`. */
  readonly type = "gauge" as const;

  /**
   * Sets a series.
   *
   * @param labels The series' labels.
   * @param value The value.
   */
  set(labels: Labels | undefined, value: number): void {
    if (typeof value !== "number") {
      throw new TypeError(`Gauge ${this.name}: value must be a number, got ${typeof value}`);
    }
    this.at(labels, () => 0).value = value;
  }

  /**
   * Adds to a series (negative to subtract).
   *
   * @param labels The series' labels.
   * @param by How much to add (default 1).
   */
  inc(labels?: Labels, by = 1): void {
    this.at(labels, () => 0).value += by;
  }

  /**
   * Reads a series.
   *
   * @param labels The series' labels.
   * @returns Its value (0 when never set).
   */
  get(labels?: Labels): number {
    return this.at(labels, () => 0, false).value;
  }

  /**
   * Renders the samples.
   *
   * @param out The lines to append to.
   */
  protected samples(out: string[]): void {
    for (const { labels, value } of this.series.values()) {
      out.push(`${this.name}${renderLabels(labels)} ${formatValue(value)}`);
    }
  }
}

/** The state of one histogram series. */
export interface HistogramSeries {
  /** Per bucket, how many observations were ≤ its bound (cumulative). */
  counts: number[];
  /** The sum of the observations. */
  sum: number;
  /** How many observations. */
  count: number;
}

/**
 * Observations counted into cumulative buckets (durations in seconds), with their sum and count.
 *
 * @example
 * ```ts
 * import { Registry } from "@denokube/kube";
 * const h = new Registry().histogram({ name: "reconcile_seconds", help: "Reconcile time." });
 * h.observe(undefined, 0.042);
 * ```
 */
export class Histogram extends Metric<HistogramSeries> {
  /** Always `histogram`. */
  readonly type = "histogram" as const;
  /** The bucket upper bounds, without `+Inf`. */
  readonly buckets: readonly number[];

  /**
   * Creates a histogram; prefer {@linkcode Registry.prototype.histogram}.
   *
   * @param options Name, help, label names and buckets.
   */
  constructor(options: HistogramOptions) {
    super(options, ["le"]);
    const buckets = [...(options.buckets ?? DEFAULT_BUCKETS)].filter((b) => b !== Infinity);
    if (
      buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || b <= buckets[i - 1])
    ) {
      throw new TypeError(
        `Histogram ${options.name}: buckets must be finite and strictly increasing, got [${buckets}]`,
      );
    }
    this.buckets = Object.freeze(buckets);
  }

  /**
   * Records one observation.
   *
   * @param labels The series' labels.
   * @param value The observed value (seconds, for durations).
   */
  observe(labels: Labels | undefined, value: number): void {
    if (typeof value !== "number" || Number.isNaN(value)) {
      throw new TypeError(`Histogram ${this.name}: cannot observe ${value}`);
    }
    const state = this.at(labels, () => ({
      counts: new Array(this.buckets.length).fill(0),
      sum: 0,
      count: 0,
    })).value;
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= this.buckets[i]) state.counts[i]++;
    }
    state.sum += value;
    state.count++;
  }

  /**
   * Reads a series' count and sum.
   *
   * @param labels The series' labels.
   * @returns How many observations, and their sum.
   */
  get(labels?: Labels): { count: number; sum: number } {
    const state = this.at(labels, () => ({ counts: [], sum: 0, count: 0 }), false).value;
    return { count: state.count, sum: state.sum };
  }

  /**
   * Renders the samples.
   *
   * @param out The lines to append to.
   */
  protected samples(out: string[]): void {
    for (const { labels, value } of this.series.values()) {
      for (let i = 0; i < this.buckets.length; i++) {
        out.push(
          `${this.name}_bucket${renderLabels({ ...labels, le: formatValue(this.buckets[i]) })} ${
            value.counts[i]
          }`,
        );
      }
      out.push(`${this.name}_bucket${renderLabels({ ...labels, le: "+Inf" })} ${value.count}`);
      out.push(`${this.name}_sum${renderLabels(labels)} ${formatValue(value.sum)}`);
      out.push(`${this.name}_count${renderLabels(labels)} ${value.count}`);
    }
  }
}

/**
 * A set of metrics, rendered together for a `/metrics` endpoint.
 *
 * @example
 * ```ts
 * import { Registry } from "@denokube/kube";
 * const registry = new Registry();
 * const leader = registry.gauge({ name: "leader", help: "1 while leading." });
 * registry.onCollect(() => leader.set(undefined, 1));
 * console.log(registry.expose()); // "# HELP leader 1 while leading.\n# TYPE leader gauge\nleader 1\n"
 * ```
 */
export class Registry {
  /** The `Content-Type` of {@linkcode Registry.prototype.expose}'s output. */
  static readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  #metrics = new Map<string, Counter | Gauge | Histogram>();
  #collectors = new Set<() => void>();

  /**
   * Creates (or returns the existing) counter.
   *
   * @param options Name, help and label names.
   * @returns The counter.
   */
  counter(options: MetricOptions): Counter {
    return this.#add(options, "counter", () => new Counter(options)) as Counter;
  }

  /**
   * Creates (or returns the existing) gauge.
   *
   * @param options Name, help and label names.
   * @returns The gauge.
   */
  gauge(options: MetricOptions): Gauge {
    return this.#add(options, "gauge", () => new Gauge(options)) as Gauge;
  }

  /**
   * Creates (or returns the existing) histogram.
   *
   * @param options Name, help, label names and buckets.
   * @returns The histogram.
   */
  histogram(options: HistogramOptions): Histogram {
    return this.#add(options, "histogram", () => new Histogram(options)) as Histogram;
  }

  /**
   * Runs `collect` before every {@linkcode Registry.prototype.expose}: the place to read values
   * that are cheaper to sample than to track (queue depths, cache sizes).
   *
   * @param collect Sets gauges; a throw is reported in the output as a comment, not as a failure.
   * @returns A function that removes it.
   */
  onCollect(collect: () => void): () => void {
    this.#collectors.add(collect);
    return () => this.#collectors.delete(collect);
  }

  /**
   * Looks a metric up by name.
   *
   * @param name The metric name.
   * @returns The metric, if registered.
   */
  get(name: string): Counter | Gauge | Histogram | undefined {
    return this.#metrics.get(name);
  }

  /**
   * Renders every metric in the Prometheus text exposition format 0.0.4.
   *
   * @returns The exposition text (serve it with {@linkcode Registry.contentType}).
   */
  expose(): string {
    const problems: string[] = [];
    for (const collect of this.#collectors) {
      try {
        collect();
      } catch (e) {
        problems.push(
          `# collector failed: ${escapeHelp(e instanceof Error ? e.message : String(e))}`,
        );
      }
    }
    const parts = [...this.#metrics.values()].map((m) => m.render());
    return parts.join("") + (problems.length ? problems.join("\n") + "\n" : "");
  }

  #add(
    options: MetricOptions,
    type: string,
    make: () => Counter | Gauge | Histogram,
  ): Counter | Gauge | Histogram {
    const existing = this.#metrics.get(options?.name);
    if (existing) {
      const same = existing.type === type &&
        existing.labelNames.join(",") === [...(options.labelNames ?? [])].join(",");
      if (!same) {
        throw new TypeError(
          `Metric ${options.name} is already registered as a ${existing.type} with labels [${
            existing.labelNames.join(", ")
          }]`,
        );
      }
      return existing;
    }
    const metric = make();
    for (const suffix of ["_bucket", "_sum", "_count"]) {
      for (const other of this.#metrics.values()) {
        if (other.type === "histogram" && metric.name === other.name + suffix) {
          throw new TypeError(`Metric ${metric.name} clashes with histogram ${other.name}`);
        }
      }
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }
}

function renderLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
