/**
 * An optional peer dependency of the kit is needed and not installed: thrown by the
 * feature that needs it (`new InstrumentedS3(...)` without `@aws-sdk/client-s3`), never
 * at `import 'otel-service-kit'`.
 *
 * @example
 * try {
 *   s3 = new InstrumentedS3({ bucket: 'receipts' });
 * } catch (error) {
 *   if (isMissingPeerDependencyError(error)) console.error(error.message); // "... npm install @aws-sdk/client-s3"
 *   throw error;
 * }
 */
export class MissingPeerDependencyError extends Error {
  override readonly name = 'MissingPeerDependencyError';
  readonly code = 'OSK_MISSING_PEER_DEPENDENCY';
  /** The package to install, e.g. `@aws-sdk/client-s3`. */
  readonly packageName: string;

  constructor(packageName: string, feature: string, cause?: unknown) {
    super(
      `${feature} needs ${packageName}, an optional peer dependency of otel-service-kit that is not installed: npm install ${packageName}`,
      { cause },
    );
    this.packageName = packageName;
  }
}

/** True for a `MissingPeerDependencyError`, also one thrown by another copy of the package. */
export function isMissingPeerDependencyError(e: unknown): e is MissingPeerDependencyError {
  return e instanceof Error && (e as { code?: unknown }).code === 'OSK_MISSING_PEER_DEPENDENCY';
}
