// Environment variables a test sets for the shipped channel files to read (ports, test INS OIDs).

/** Sets `vars` in process.env; the function returned puts back what was there (or nothing). */
export function setEnv(vars: Record<string, string>): () => void {
  const saved = Object.keys(vars).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, vars);
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
