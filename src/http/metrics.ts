/**
 * `/metrics` in Prometheus text format. One registry per server (never
 * prom-client's global one), so two servers in one process, as in tests,
 * keep their own counts.
 */
import client from "prom-client";

export class Metrics {
  readonly registry = new client.Registry();

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: "jobsmanager_" });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
