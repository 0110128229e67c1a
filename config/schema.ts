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
    initialDelayMs: { type: 'integer', minimum: 0, default: 1000 },
    maxDelayMs: { type: 'integer', minimum: 0, default: 300000 },
    multiplier: { type: 'number', minimum: 1, default: 2 },
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
      properties: {
        bind: { type: 'string', default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['cert', 'key'],
          properties: { cert: { type: 'string' }, key: { type: 'string' } },
        },
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        synchronous: { enum: ['FULL', 'NORMAL'], default: 'FULL' },
        pruneAfterDays: { type: 'integer', minimum: 1, default: 90 },
        pruneEveryMinutes: { type: 'integer', minimum: 1, default: 60 },
      },
    },
    defaults: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        retry: { ...retry, default: {} },
        queueLimit: { type: 'integer', minimum: 1, default: 10000 },
      },
    },
    identity: {
      type: 'object',
      description: 'Identity-vigilance rules (see the README).',
      default: {},
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
    reportsFor: {
      description:
        'establishments whose patients it may report on besides its own: all of the directory, or a list of FINESS (default: all for labs, none for others)',
      oneOf: [
        { const: 'all' },
        { type: 'array', items: { type: 'string', pattern: '^\\d{9}$' }, uniqueItems: true },
      ],
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
          mssante: { type: 'string' },
          finess: { type: 'string' },
        },
      },
    },
  },
} as const;

const component = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string', minLength: 1 } },
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
    name: { type: 'string' },
    description: { type: 'string' },
    enabled: { type: 'boolean', default: true, description: 'Deployed on start.' },
    storage: {
      enum: ['all', 'production', 'metadata'],
      default: 'all',
      description: 'What content is kept once a message is complete (errors keep everything).',
    },
    queueLimit: { type: 'integer', minimum: 1, description: 'Back-pressure bound: sources pause above it.' },
    dedup: {
      type: 'boolean',
      default: true,
      description: 'Record re-sent content as DUPLICATE instead of filing it twice.',
    },
    source: component,
    steps: { type: 'array', items: component, default: [] },
    destinations: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name', 'type'],
        properties: {
          name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
          type: { type: 'string' },
          queue: { enum: ['ordered', 'parallel'], default: 'ordered' },
          concurrency: { type: 'integer', minimum: 1, maximum: 64, default: 4 },
          retry,
          steps: { type: 'array', items: component, default: [] },
        },
      },
    },
  },
} as const;

/** Keys of a channel's destination entry that belong to the engine, not to the connector's options. */
export const destinationFrameKeys = ['name', 'type', 'queue', 'concurrency', 'retry', 'steps'] as const;
