// The store's write API: every write of the engine is a method of a store module, called by name and
// run by the writer in a group commit; callers get a promise that settles after that commit. Calls
// carry plain data only (structured-cloneable arguments and results), so that the writer can run
// in another thread than its callers without changing a call site.
type Method = (...args: never[]) => unknown;

/** A module's methods, each returning a promise of its result. */
export type AsyncMethods<T> = {
  readonly [K in keyof T as T[K] extends Method ? K : never]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : never;
};

/** The asynchronous face of a set of modules: `writes.journal.receive(m)`. */
export type Writes<M> = { readonly [K in keyof M]: AsyncMethods<M[K]> };

/** Runs one named method of one module where the writer runs, in its next group transaction. */
export type Run = (module: string, method: string, args: unknown[]) => Promise<unknown>;

/** Builds the typed facade over a runner: property access names the module and the method. */
export function writesThrough<M extends object>(run: Run): Writes<M> {
  const modules = new Map<string, object>();
  return new Proxy({} as Writes<M>, {
    get(_target, module) {
      if (typeof module !== 'string') return undefined;
      let face = modules.get(module);
      if (!face) {
        face = new Proxy(
          {},
          {
            get: (_t, method) =>
              typeof method === 'string' ? (...args: unknown[]) => run(module, method, args) : undefined,
          },
        );
        modules.set(module, face);
      }
      return face;
    },
  });
}
