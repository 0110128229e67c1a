// What every socket connector does before its first byte: read TLS material and bind a port,
// failing with an error that names the file or the port and what to change.
import fs from 'node:fs';
import type { Server } from 'node:net';
import path from 'node:path';
import Type, { type TProperties } from 'typebox';
import { OncoError } from '../config/errors.ts';
import { Default } from '../transformers/contract.ts';
import type { SourceContext } from './contract.ts';
import type { InFlight } from './poll-loop.ts';

export class ConnectorSetupError extends OncoError {
  declare readonly hint: string;
  constructor(code: string, message: string, hint: string, cause?: unknown) {
    super(code, { message, hint, cause });
  }
}

/** PEM file paths as written in the channel configuration; relative ones resolve against the data directory. */
export interface TlsFiles {
  cert?: string;
  key?: string;
  ca?: string;
}

export interface TlsMaterial {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
}

export function readTlsFiles(dataDir: string, files: TlsFiles): TlsMaterial {
  const material: TlsMaterial = {};
  for (const name of ['cert', 'key', 'ca'] as const) {
    const file = files[name];
    if (file === undefined) continue;
    const full = path.resolve(dataDir, file);
    try {
      material[name] = fs.readFileSync(full);
    } catch (cause) {
      throw new ConnectorSetupError(
        'TLS_FILE_UNREADABLE',
        `cannot read TLS ${name} file ${full}`,
        `check option tls.${name}: a PEM file path, relative paths resolve against ${dataDir}`,
        cause,
      );
    }
  }
  return material;
}

/** The bind address of listeners: option, else ONCO_BIND, else loopback only. */
export function defaultBind(): string {
  return process.env['ONCO_BIND'] || '127.0.0.1';
}

/**
 * The port a listener takes when its options give none: the environment variable the README names
 * (ONCO_MLLP_PORT, ONCO_SFTP_PORT, ONCO_HTTP_PORT), else the protocol's usual port.
 */
export function envPort(name: string, fallback: number): number {
  const env = process.env[name];
  if (env === undefined || env === '') return fallback;
  const port = Number(env);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConnectorSetupError(
      'BAD_PORT',
      `${name} is "${env}", not a port number`,
      `set ${name} to an integer from 1 to 65535, or give the channel a port option`,
    );
  }
  return port;
}

/** Options of a listener serving TLS: its certificate and key, and what a listener adds (client checks). */
export function tlsServerOption<P extends TProperties = Record<never, never>>(
  description: string,
  extra: P = {} as P,
) {
  return Type.Object(
    {
      cert: Type.String({ description: 'PEM certificate file (relative to the data directory)' }),
      key: Type.String({ description: 'PEM private key file' }),
      ...extra,
    },
    { additionalProperties: false, description },
  );
}

/** Options of a TLS client: whom it trusts, and its own certificate for mutual TLS. */
export function tlsClientOption<P extends TProperties = Record<never, never>>(extra: P = {} as P) {
  return Type.Object(
    {
      ca: Type.Optional(Type.String({ description: 'PEM CA bundle file trusted for the peer certificate' })),
      cert: Type.Optional(Type.String({ description: 'PEM client certificate file (mutual TLS)' })),
      key: Type.Optional(Type.String({ description: 'PEM client key file (mutual TLS)' })),
      rejectUnauthorized: Default(
        Type.Boolean({ description: 'false accepts any certificate: tests only.' }),
        true,
      ),
      ...extra,
    },
    { additionalProperties: false, description: 'Connect over TLS; how the peer’s certificate is checked.' },
  );
}

/** Binds and resolves with the port actually used (the option may be 0 for tests). */
export function listen(server: Server, port: number, bind: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (cause: NodeJS.ErrnoException): void => {
      const inUse = cause.code === 'EADDRINUSE';
      reject(
        new ConnectorSetupError(
          inUse ? 'PORT_IN_USE' : 'LISTEN_FAILED',
          `${what} cannot listen on ${bind}:${port}: ${cause.code ?? cause.message}`,
          inUse
            ? 'another process or channel holds this port: choose another port in the channel options'
            : 'check the bind address (option bind or ONCO_BIND) and the port',
          cause,
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, bind, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

/**
 * What one listener accepts at most: beyond `maxConnections` a new connection is closed at once,
 * and a connection silent for `idleTimeoutMs` is closed (a peer that opens sockets and never
 * speaks would otherwise exhaust the process's file descriptors).
 */
export interface ConnectionLimits {
  maxConnections: number;
  idleTimeoutMs: number;
}

export const defaultConnectionLimits: ConnectionLimits = { maxConnections: 200, idleTimeoutMs: 300_000 };

/** The options of ConnectionLimits, spread into each listener's spec (and so into the docs). */
export const connectionLimitOptions = {
  maxConnections: Default(
    Type.Integer({
      minimum: 1,
      description: 'connections open at once; a new one beyond this is closed at once',
    }),
    defaultConnectionLimits.maxConnections,
  ),
  idleTimeoutMs: Default(
    Type.Integer({ minimum: 1, description: 'a connection that sends nothing for this long is closed' }),
    defaultConnectionLimits.idleTimeoutMs,
  ),
};

/** A source's hold on a listener that several channels share (the one SFTP server, the one SMTP server). */
export interface SharedListenerHold {
  /** Takes this source's route off the server: no new work reaches the source. */
  unroute: (() => void) | null;
  /** Gives back this source's share of the server; the last share closes it. */
  release: (() => Promise<void>) | null;
}

/**
 * Stops a source of a shared listener in the order that loses nothing: no new work is routed to it,
 * the work it took settles (journaled and answered), then its share of the server goes. Safe to call
 * twice (start's failure path, then the engine's stop).
 */
export async function leaveSharedListener(
  hold: SharedListenerHold,
  inFlight: InFlight,
  ctx: Pick<SourceContext, 'report'>,
): Promise<void> {
  hold.unroute?.();
  hold.unroute = null;
  await inFlight.settled();
  const release = hold.release;
  hold.release = null;
  await release?.();
  ctx.report({ connected: false });
}
