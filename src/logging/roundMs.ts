/**
 * A duration in ms rounded to two decimals (10 µs), as every `duration_ms` the kit writes
 * (log lines, the readiness body): finer digits are timer noise and only lengthen the line.
 */
export function roundMs(ms: number): number {
  return Math.round(ms * 100) / 100;
}
