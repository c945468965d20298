/** The `status_class` label of every request metric. */
export type StatusClass = 'success' | 'rate_limited' | 'client_error' | 'server_error' | 'network_error';

/**
 * Classify an outcome for the `status_class` label: `network_error` when there was an
 * error or no status at all, `success` for 200–399, `rate_limited` for 429,
 * `client_error` for other 4xx and `server_error` for everything else with a status.
 *
 * @example
 * classifyStatus(503)                 // 'server_error'
 * classifyStatus(undefined, err)      // 'network_error'
 */
export function classifyStatus(statusCode?: number | null, error?: unknown): StatusClass {
  if (error !== undefined && error !== null) return 'network_error';
  if (statusCode === undefined || statusCode === null) return 'network_error';
  if (statusCode >= 200 && statusCode < 400) return 'success';
  if (statusCode === 429) return 'rate_limited';
  if (statusCode >= 400 && statusCode < 500) return 'client_error';
  return 'server_error';
}
