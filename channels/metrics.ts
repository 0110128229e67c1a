// Per-channel counters since the process started, in the shape Prometheus expects.

/** Upper bounds, in seconds, of the end-to-end latency histogram (receive to last delivery). */
export const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;

export class ChannelMetrics {
  received = 0;
  duplicates = 0;
  rejected = 0;
  filtered = 0;
  transformed = 0;
  errored = 0;
  sent = 0;
  sendFailures = 0;
  /** Deliveries that ended in ERROR or QUARANTINED: each is an alert (log code DELIVERY_FAILED). */
  deliveriesFailed = 0;
  /** Messages quarantined by the poison guard (log code POISON_MESSAGE). */
  quarantined = 0;
  readonly latency = { buckets: latencyBuckets.map(() => 0), count: 0, sum: 0 };

  observeLatency(seconds: number): void {
    this.latency.count++;
    this.latency.sum += seconds;
    latencyBuckets.forEach((bound, i) => {
      if (seconds <= bound) this.latency.buckets[i]!++;
    });
  }
}
