import { getResourceDetectors } from '@opentelemetry/auto-instrumentations-node';
import type { DetectedResourceAttributes, ResourceDetector } from '@opentelemetry/resources';
import type { Env } from '../config.ts';
import { isSecretName, redactedValue, redactText } from '../secrets.ts';

/**
 * The detectors run when `OTEL_NODE_RESOURCE_DETECTORS` is unset: the local ones. The
 * anchor's default, `all`, also runs the cloud detectors, which query metadata endpoints
 * over the network at every start.
 */
const defaultResourceDetectors = 'env,host,os,process,serviceinstance,container';

/** Resource attributes that carry the process's command line: published only when asked for. */
const commandLineAttributes = new Set(['process.command_args', 'process.command_line']);

/**
 * The resource detectors `OTEL_NODE_RESOURCE_DETECTORS` names (`env`, `host`, `os`,
 * `process`, `serviceinstance`, `container`, `aws`, `azure`, `gcp`, `alibaba`, `all`,
 * `none`), exactly as auto-instrumentations-node reads it, with an unknown name reported
 * through `diag`. Each detector's attributes pass through the secret list, and the
 * command line is left out unless `keepCommandLine` (`TELEMETRY_RESOURCE_COMMAND_LINE=true`): `/metrics`
 * publishes every resource attribute in `target_info`, and arguments carry secrets
 * (`--db-url=postgres://app:hunter2@…`).
 */
export function resourceDetectors(env: Env, keepCommandLine: boolean): ResourceDetector[] {
  const unset = (env.OTEL_NODE_RESOURCE_DETECTORS ?? '').trim() === '';
  // The library reads process.env itself: lend it the kit's default for the call.
  if (unset) process.env.OTEL_NODE_RESOURCE_DETECTORS = defaultResourceDetectors;
  let detectors: ResourceDetector[];
  try {
    detectors = getResourceDetectors();
  } finally {
    if (unset) delete process.env.OTEL_NODE_RESOURCE_DETECTORS;
  }
  return detectors.map((detector) => ({
    detect: (config) => {
      const detected = detector.detect(config);
      return { ...detected, attributes: safeAttributes(detected.attributes ?? {}, keepCommandLine) };
    },
  }));
}

function safeAttributes(
  attributes: DetectedResourceAttributes,
  keepCommandLine: boolean,
): DetectedResourceAttributes {
  const out: DetectedResourceAttributes = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (!keepCommandLine && commandLineAttributes.has(name)) continue;
    if (isSecretName(name.slice(name.lastIndexOf('.') + 1))) out[name] = redactedValue;
    else out[name] = value instanceof Promise ? value.then(safeValue) : safeValue(value);
  }
  return out;
}

function safeValue<T>(value: T): T {
  if (typeof value === 'string') return redactText(value) as T;
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'string' ? redactText(v) : v)) as T;
  return value;
}
