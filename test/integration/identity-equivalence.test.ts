// Decision equivalence of the identity filing: a realistic generated feed (test/support/identity-feed.ts:
// duplicates, near-duplicates, merges, renumbering, links, qualified INS and not, refusals) is loaded
// with the bulk import, and what the store holds afterwards (patients, identifiers, merges, links,
// review items, the decision journal, timestamps aside) must be what the vigilance rules decided
// before they were tuned for speed: the digests in test/fixtures/identity-equivalence.json were
// recorded with the rules as of commit b700381. On a mismatch the dump is written to
// test-artifacts/identity-equivalence/ to be compared with one from that commit
// (`ONCO_EQUIVALENCE_DUMP=1` writes it on a passing run too).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { identityFiles, importIdentities } from '../../channels/identity-import.ts';
import { Store } from '../../store/store.ts';
import { tempDir } from '../support/engine-harness.ts';
import { feedDirectory, identityFeed } from '../support/identity-feed.ts';

const FIXTURE = path.resolve('test/fixtures/identity-equivalence.json');
const PEOPLE = 20_000;

/** Each table as canonical lines, in id order, without the clock's columns. */
const TABLES: Record<string, string> = {
  patients: `SELECT id, birth_name, given_names, first_given_name, birth_date, sex, birth_place, used_name,
               used_given_name, ins_matricule, ins_oid, ins_status, reliability, collection_mode, name_year_block,
               name_day_block, merged_into, source_message_id, death_date, deceased FROM patients ORDER BY id`,
  identifiers: `SELECT id, finess, ipp, namespace, patient_id, status, merged_into_ipp, identity, source_message_id
                  FROM patient_identifiers ORDER BY id`,
  search: 'SELECT name, patient_id, given FROM patient_search ORDER BY patient_id, name',
  decisions: `SELECT id, patient_id, other_patient_id, action, rule, message_id, author, input, detail
                FROM identity_decisions ORDER BY id`,
  // The survivor's traits before the merge, its timestamps aside.
  merges: `SELECT id, survivor_id, merged_id, json_remove(survivor_before, '$.createdAt', '$.updatedAt'),
             identifier_id, decision_id, undo_decision_id FROM patient_merges ORDER BY id`,
  links: 'SELECT * FROM patient_links ORDER BY id',
  reviews: 'SELECT * FROM identity_reviews ORDER BY id',
};

interface Digest {
  rows: number;
  sha256: string;
}

describe('identity filing: decisions equal to the recorded ones', function () {
  this.timeout(300_000);

  it(`files a ${PEOPLE.toLocaleString('en')}-person feed into exactly the recorded patients, identifiers, links and review items`, async () => {
    const feed = identityFeed({ people: PEOPLE });
    const src = tempDir('onco-equivalence-feed-');
    const perFile = 5000;
    for (let f = 0; f * perFile < feed.length; f++)
      fs.writeFileSync(
        path.join(src, `feed-${String(f).padStart(3, '0')}.hl7`),
        feed.slice(f * perFile, (f + 1) * perFile).join(''),
      );
    const data = tempDir('onco-equivalence-data-');
    const store = new Store({ dataDir: data });
    try {
      const report = await importIdentities(store, await identityFiles([src]), {
        author: 'equivalence',
        directory: feedDirectory,
      });
      const dump: Record<string, string[]> = {};
      const got: Record<string, unknown> = {
        messages: report.messages,
        filed: report.filed,
        refused: report.refused,
        actions: Object.fromEntries(Object.entries(report.actions).sort()),
        // Which messages were refused (their wording is the importer's, not a decision).
        refusedAt: crypto
          .createHash('sha256')
          .update(report.errors.map((e) => `${path.basename(e.file)}#${e.message}`).join(' '))
          .digest('hex'),
      };
      for (const [table, sql] of Object.entries(TABLES)) {
        const lines = (store.db.prepare(sql).raw().all() as unknown[][]).map((r) => JSON.stringify(r));
        dump[table] = lines;
        got[table] = {
          rows: lines.length,
          sha256: crypto.createHash('sha256').update(lines.join('\n')).digest('hex'),
        } satisfies Digest;
      }
      const expected: unknown = fs.existsSync(FIXTURE) ? JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) : null;
      if (JSON.stringify(got) !== JSON.stringify(expected) || process.env.ONCO_EQUIVALENCE_DUMP) {
        const out = path.resolve('test-artifacts/identity-equivalence');
        fs.mkdirSync(out, { recursive: true });
        for (const [table, lines] of Object.entries(dump))
          fs.writeFileSync(path.join(out, `${table}.jsonl`), `${lines.join('\n')}\n`);
        fs.writeFileSync(path.join(out, 'digest.json'), `${JSON.stringify(got, null, 2)}\n`);
      }
      assert.deepEqual(
        got,
        expected,
        'the store differs from the recorded decisions: see test-artifacts/identity-equivalence/',
      );
    } finally {
      await store.close();
      for (const dir of [src, data]) fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
