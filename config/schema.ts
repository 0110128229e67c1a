// The shapes of the configuration files. Component options (a source's path, a destination's host)
// are validated by each component's own spec in the channel registry; here only the frame.

const retry = {
  type: 'object',
  additionalProperties: false,
  description: 'Retry policy of a destination: exponential backoff with jitter, then ERROR.',
  properties: {
    maxAttempts: {
      type: 'integer',
      minimum: 1,
      default: 8,
      description: 'Attempts before the delivery goes to ERROR.',
    },
    initialDelayMs: {
      type: 'integer',
      minimum: 0,
      default: 1000,
      description: 'Wait before the second attempt, in milliseconds.',
    },
    maxDelayMs: {
      type: 'integer',
      minimum: 0,
      default: 300000,
      description: 'Longest wait between two attempts, in milliseconds.',
    },
    multiplier: {
      type: 'number',
      minimum: 1,
      default: 2,
      description: 'Each wait is the previous one times this.',
    },
    jitter: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      default: 0.2,
      description: 'Fraction of the delay drawn at random.',
    },
  },
} as const;

export const engineSchema = {
  $id: 'onco-relay/engine',
  type: 'object',
  additionalProperties: false,
  properties: {
    http: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'The dashboard, the admin API and /metrics.',
      properties: {
        bind: {
          type: 'string',
          default: '127.0.0.1',
          description: 'Address to listen on; 0.0.0.0 for every interface (put TLS in front, or set tls).',
        },
        port: {
          type: 'integer',
          minimum: 0,
          maximum: 65535,
          default: 8080,
          description: 'Port to listen on.',
        },
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['cert', 'key'],
          description: 'Serve HTTPS (and mark session cookies Secure).',
          properties: {
            cert: { type: 'string', description: 'PEM certificate file.' },
            key: { type: 'string', description: 'PEM private key file.' },
          },
        },
        trustProxy: {
          type: 'array',
          items: { type: 'string' },
          default: [],
          description:
            'addresses (or CIDR ranges) of the reverse proxies in front: their X-Forwarded-For names the client, whose address login throttling and the audit trail then use',
        },
        secureCookies: {
          enum: ['auto', 'always', 'never'],
          default: 'auto',
          description:
            'Secure flag of the session cookie; auto: when served over TLS or behind a proxy sending X-Forwarded-Proto: https',
        },
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'The SQLite store in the data directory.',
      properties: {
        synchronous: {
          enum: ['FULL', 'NORMAL'],
          default: 'FULL',
          description: 'FULL survives a power cut; NORMAL only a process crash.',
        },
        writer: {
          enum: ['thread', 'inline'],
          default: 'thread',
          description:
            'thread: a worker thread owns the write connection, so that commits never stall the sockets; inline: commits in the main thread (the benchmark baseline).',
        },
        pruneAfterDays: {
          type: 'integer',
          minimum: 1,
          default: 90,
          description: 'Finished messages older than this are deleted; unfinished work never is.',
        },
        pruneEveryMinutes: {
          type: 'integer',
          minimum: 1,
          default: 60,
          description: 'How often pruning runs.',
        },
        blobThresholdBytes: {
          type: 'integer',
          minimum: 1024,
          default: 1048576,
          description:
            'Content larger than this is kept as a file in data/blobs (written and fsynced before the commit that references it, one file per distinct content) instead of in the database: memory does not grow with message size.',
        },
        writerRestarts: {
          type: 'integer',
          minimum: 0,
          default: 5,
          description:
            'How many deaths in a row of the writer thread are followed by a restart (after 0.1 s, doubling up to 5 s; a thread that ran a minute starts the count again). Writes fail with JOURNAL_UNAVAILABLE while it is down, and for good after that many: /api/health says so.',
        },
      },
    },
    stepPool: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description:
        'Worker threads for the CPU-bound steps that may leave the main thread (cda-pdf, cda-xdm, cda-hl7v2): the PDF and the packaging use every core while the main thread journals and answers.',
      properties: {
        threads: {
          type: 'integer',
          minimum: 0,
          description:
            'How many threads; default: the cores available (os.availableParallelism()); 0: every step on the main thread.',
        },
      },
    },
    defaults: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'What a channel file does not set.',
      properties: {
        retry: { ...retry, default: {} },
        queueLimit: {
          type: 'integer',
          minimum: 1,
          default: 10000,
          description: 'Back-pressure bound of a channel without its own queueLimit.',
        },
        poisonLimit: {
          type: 'integer',
          minimum: 2,
          default: 3,
          description:
            'Poison guard: a message or a delivery is quarantined after this many attempts that began and never finished (the engine died or stalled each time).',
        },
      },
    },
    identity: {
      type: 'object',
      description: 'Identity-vigilance rules (see the README).',
      default: {},
    },
  },
} as const;

/** Contextual calls (ACTX) an establishment's record system makes; see the contract's ACTX section. */
const actx = {
  type: 'object',
  additionalProperties: false,
  description:
    'Contextual calls (GET /actx/patient, /actx/global) from this establishment. Without a secret (or key) they are refused.',
  properties: {
    verifier: {
      enum: ['hmac-sha256', 'jwt'],
      default: 'hmac-sha256',
      description:
        'How a call proves its origin: hmac-sha256 (the signed query of the contract) or jwt (one signed token in the parameter jwt)',
    },
    secret: {
      type: 'string',
      // Empty is "not set" (the shipped file reads an unset variable as ''); a short secret is guessable.
      pattern: '^(?:.{16,})?$',
      description:
        'The shared secret (16 characters or more); read it from the environment: ${ONCO_ACTX_SECRET_<FINESS>:-}. Empty: not set',
    },
    secretFile: {
      type: 'string',
      description: 'A file holding the secret instead (relative paths: the configuration directory)',
    },
    publicKeyFile: {
      type: 'string',
      description: 'jwt only: a PEM public key (RS256, PS256, ES256, EdDSA) instead of the HS256 secret',
    },
    createAccounts: {
      type: 'boolean',
      default: false,
      description: "Creates the professional's account (login: the RPPS) on the first call",
    },
    accountRole: {
      enum: ['establishment', 'viewer'],
      default: 'establishment',
      description:
        "Role of the accounts it creates: establishment (sees this FINESS's patients only) or viewer (every patient: a 3C)",
    },
    acceptTestIns: {
      type: 'boolean',
      default: false,
      description: 'Accept the INS test and demo OIDs (test appliances only)',
    },
  },
} as const;

const establishment = {
  type: 'object',
  additionalProperties: true,
  required: ['finess', 'name'],
  properties: {
    finess: { type: 'string', pattern: '^\\d{9}$' },
    name: { type: 'string', minLength: 1 },
    kind: { enum: ['hospital', 'pathology-lab', 'molecular-lab', 'other'], default: 'hospital' },
    actx,
    reportsFor: {
      description:
        'establishments whose patients it may report on besides its own: all of the directory, or a list of FINESS (default: all for labs, none for others)',
      oneOf: [
        { const: 'all' },
        { type: 'array', items: { type: 'string', pattern: '^\\d{9}$' }, uniqueItems: true },
      ],
    },
    mssante: {
      description:
        'its MSSanté addresses: the senders an smtp-inbox with allowFrom directory (or labs) accepts',
      type: 'array',
      items: { type: 'string', pattern: '^[^@\\s]+@[^@\\s]+$' },
      default: [],
    },
    documents: {
      type: 'object',
      additionalProperties: false,
      required: ['way'],
      description:
        'how it takes the documents the DCC sends (validated FRCP, PPS); default: pickup in its own /out/ of the built-in SFTP server',
      properties: {
        way: {
          enum: ['sftp-push', 'pickup', 'mllp', 'mssante'],
          description:
            'sftp-push to its server, pickup in its /out/, mllp to its record system, mssante to its mailbox',
        },
        channel: {
          type: 'string',
          description:
            'the channel carrying this way for it, where its server is configured (default documents-sftp, documents-pickup, documents-mllp, documents-mail)',
        },
        mailbox: {
          type: 'string',
          pattern: '^[^@\\s]+@[^@\\s]+$',
          description: 'its MSSanté mailbox (way mssante)',
        },
        format: {
          enum: ['cda', 'xdm', 'hl7v2'],
          description:
            'what a file it picks up or is pushed holds (ways pickup, sftp-push): cda (default) NAME.xml and NAME.pdf, xdm NAME.zip (IHE XDM with the PDF), hl7v2 NAME.hl7 (MDM^T02 with CDA and PDF)',
        },
        application: {
          type: 'string',
          minLength: 1,
          description:
            'MSH-5 of the HL7 v2 messages it is sent (its record system), ways mllp and hl7v2 files',
        },
      },
      if: { properties: { way: { const: 'mssante' } } },
      then: { required: ['way', 'mailbox'] },
    },
  },
} as const;

export const directorySchema = {
  $id: 'onco-relay/directory',
  type: 'object',
  additionalProperties: false,
  properties: {
    establishments: { type: 'array', items: establishment, default: [] },
    professionals: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        required: ['rpps', 'family', 'given'],
        properties: {
          rpps: { type: 'string', pattern: '^\\d{11}$' },
          family: { type: 'string' },
          given: { type: 'string' },
          mssante: {
            type: 'string',
            pattern: '^[^@\\s]+@[^@\\s]+$',
            description: 'MSSanté mailbox: documents of the patients they care for are sent there',
          },
          finess: { type: 'string' },
        },
      },
    },
  },
} as const;

const component = {
  type: 'object',
  required: ['type'],
  properties: {
    type: {
      type: 'string',
      minLength: 1,
      description: 'The component, one of those listed below; its options sit beside it.',
    },
  },
} as const;

export const channelSchema = {
  $id: 'onco-relay/channel',
  type: 'object',
  additionalProperties: false,
  required: ['id', 'source', 'destinations'],
  properties: {
    id: {
      type: 'string',
      pattern: '^[a-z0-9][a-z0-9-]{0,62}$',
      description: 'Stable id, used in the journal and URLs.',
    },
    name: { type: 'string', description: 'Name shown on the dashboard (default: the id).' },
    description: { type: 'string', description: 'Free text for the people who maintain the file.' },
    enabled: {
      type: 'boolean',
      default: true,
      description: 'Deployed on start; false keeps the file loaded and validated but the channel stopped.',
    },
    storage: {
      enum: ['all', 'production', 'metadata'],
      default: 'all',
      description: 'What content is kept once a message is complete (errors keep everything).',
    },
    queueLimit: {
      type: 'integer',
      minimum: 1,
      description:
        'Back-pressure bound: sources pause while more messages than this wait (default: engine.yaml defaults.queueLimit).',
    },
    dedup: {
      type: 'boolean',
      default: true,
      description: 'Record re-sent content as DUPLICATE instead of filing it twice.',
    },
    source: { ...component, description: 'Where messages come from: one source (see Sources).' },
    steps: {
      type: 'array',
      items: component,
      default: [],
      description: 'Filters and transformers run in order after the message is journaled (see Steps).',
    },
    destinations: {
      type: 'array',
      minItems: 1,
      description: 'Where messages go: each has its own queue, retries and outcome (see Destinations).',
      items: {
        type: 'object',
        required: ['name', 'type'],
        properties: {
          name: {
            type: 'string',
            pattern: '^[a-z0-9][a-z0-9-]{0,62}$',
            description: 'Stable name within the channel: deliveries, idempotency keys and URLs use it.',
          },
          type: { type: 'string', description: 'The destination, one of those listed under Destinations.' },
          queue: {
            enum: ['ordered', 'parallel'],
            default: 'ordered',
            description:
              'ordered: one at a time in journal order, a failing head blocks the rest (identity feeds); parallel: up to `concurrency` at once.',
          },
          concurrency: {
            type: 'integer',
            minimum: 1,
            maximum: 64,
            default: 4,
            description: 'Deliveries in flight at once when `queue: parallel`.',
          },
          retry: {
            ...retry,
            description: `${retry.description} Without it, engine.yaml defaults.retry applies.`,
          },
          steps: {
            type: 'array',
            items: component,
            default: [],
            description: "Filters and transformers run for this destination only, after the channel's steps.",
          },
        },
      },
    },
  },
} as const;

/** Keys of a channel's destination entry that belong to the engine, not to the connector's options. */
export const destinationFrameKeys = ['name', 'type', 'queue', 'concurrency', 'retry', 'steps'] as const;

/** What `${NAME}` / `${NAME:-default}` looks like before the loader replaces it. */
const interpolation = {
  type: 'string',
  pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}',
  description: '${NAME} or ${NAME:-default}: read from the environment when the file is loaded',
} as const;

type Schema = { [keyword: string]: unknown };

const typed = (s: Schema, ...types: string[]): boolean =>
  (Array.isArray(s.type) ? (s.type as string[]) : [s.type]).some((t) => types.includes(t as string));

/**
 * The schema of a file as written, before interpolation: the loader replaces `${…}` before it
 * validates, so a port or a flag may be written as `${ONCO_MLLP_PORT:-2575}`. An editor sees the
 * file before that, so every value whose type a string would break (number, boolean, enum, a
 * string with a pattern) also admits an interpolation.
 */
export function allowInterpolation<T>(schema: T): T {
  if (Array.isArray(schema)) return schema.map(allowInterpolation) as T;
  if (!schema || typeof schema !== 'object') return schema;
  const s = schema as Schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    out[k] = ['properties', '$defs'].includes(k)
      ? Object.fromEntries(Object.entries(v as Schema).map(([name, sub]) => [name, allowInterpolation(sub)]))
      : ['items', 'oneOf', 'anyOf', 'allOf', 'additionalProperties'].includes(k)
        ? allowInterpolation(v)
        : v;
  }
  const scalar =
    typed(s, 'integer', 'number', 'boolean') || 'enum' in s || (typed(s, 'string') && 'pattern' in s);
  if (!scalar) return out as T;
  const { description, default: fallback, ...rest } = out;
  return {
    ...(description === undefined ? {} : { description }),
    ...(fallback === undefined ? {} : { default: fallback }),
    anyOf: [rest, interpolation],
  } as T;
}
