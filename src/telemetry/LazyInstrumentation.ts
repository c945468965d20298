import {
  type Instrumentation,
  InstrumentationBase,
  type InstrumentationConfig,
  InstrumentationNodeModuleDefinition,
} from '@opentelemetry/instrumentation';

/** Builds the real instrumentation from its config (`new PgInstrumentation(config)`). */
export type InstrumentationFactory = (config: InstrumentationConfig) => Instrumentation;

/** The part of InstrumentationBase that applies a patch to a module being loaded (not in its public types). */
interface Patching {
  _modules: InstrumentationNodeModuleDefinition[];
  _onRequire(
    module: InstrumentationNodeModuleDefinition,
    exports: unknown,
    name: string,
    baseDir?: string,
  ): unknown;
}

/**
 * An instrumentation whose code is loaded only when the app first loads a module it
 * patches. Until then it holds hooks for those module names and nothing else; at the
 * first load it builds the real instrumentation (`make`), which patches that module as
 * its own hook would have and hooks every later load itself. An app that never loads
 * kafkajs never pays for the kafkajs instrumentation: start-up does not grow with the
 * size of the set.
 */
export class LazyInstrumentation extends InstrumentationBase {
  readonly #make: InstrumentationFactory;
  readonly #config: InstrumentationConfig;
  #real: (Instrumentation & Patching) | undefined;

  /**
   * @param name the real instrumentation's name (`@opentelemetry/instrumentation-pg`)
   * @param modules the module names it patches (its module definitions' names)
   */
  constructor(
    name: string,
    modules: readonly string[],
    make: InstrumentationFactory,
    config: InstrumentationConfig = {},
  ) {
    super(name, '0.0.0-lazy', { enabled: false });
    this.#make = make;
    this.#config = config;
    (this as unknown as Patching)._modules = modules.map(
      (m) => new InstrumentationNodeModuleDefinition(m, ['*']),
    );
    // Called by InstrumentationBase's require and import hooks for each load of a module
    // named above (through `this`, so an own property takes the prototype's place).
    (this as unknown as Patching)._onRequire = (module, exports, moduleName, baseDir) => {
      // Once built, the real instrumentation's own hooks see every later load.
      if (this.#real !== undefined) return exports;
      const real = this.real();
      const definition = real._modules.find((m) => m.name === module.name);
      return definition === undefined ? exports : real._onRequire(definition, exports, moduleName, baseDir);
    };
  }

  /** The real instrumentation, built now if it was not yet. */
  real(): Instrumentation & Patching {
    if (this.#real === undefined) {
      const real = this.#make({ ...this.#config, enabled: false }) as Instrumentation &
        Patching & { _warnOnPreloadedModules?: () => void };
      // Its module is being loaded right now, by design: not the "loaded before the
      // instrumentation" mistake this check warns about.
      real._warnOnPreloadedModules = () => {};
      real.enable();
      this.#real = real;
    }
    return this.#real;
  }

  /** True once the app loaded a module the instrumentation patches. */
  get loaded(): boolean {
    return this.#real !== undefined;
  }

  protected init(): InstrumentationNodeModuleDefinition[] {
    // Set in the constructor: init() runs inside super(), before the names are known.
    return [];
  }

  override disable(): void {
    super.disable();
    this.#real?.disable();
  }
}
