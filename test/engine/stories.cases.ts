/**
 * stories260K (a real pretrained model, llama2.c, in the InternLM2 layout):
 * greedy generation through prefill + KV-cache decode reproduces run.c's text.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, testGpu } from '../helpers/gpu.ts';
import { loadEngine, type DenseEngine } from '../../src/engine/index.ts';
import { nodeSource } from '../../src/loader/sources.ts';
import { loadTokenizer } from '../../src/tokenizer/index.ts';

const DIR = `${FIXTURES}stories260k`;
interface Case {
  name: string;
  prompt_ids: number[];
  steps: number;
  text: string;
  greedy_ids_first_100?: number[];
}
const golden = JSON.parse(readFileSync(`${DIR}/generation.golden.json`, 'utf8')) as { cases: Case[] };
const BOS = 1;

export function storiesCases(): void {
  describe('stories260k greedy generation (Dawn)', () => {
    let engine: DenseEngine | undefined;
    afterAll(() => engine?.destroy());

    for (const c of golden.cases) {
      it(`${c.name}: reproduces run.c's text`, async () => {
        const ctx = await testGpu();
        engine ??= await loadEngine(ctx, DIR, { weights: 'f32', kvDtype: 'f32', contextLength: 512, attention: { attention: 'dense' } });
        const tok = await loadTokenizer(nodeSource(DIR));
        engine.truncate(0);
        await engine.prefill(c.prompt_ids);
        // run.c forwards positions 0 .. steps - 1, printing the token picked after
        // each one from the last prompt position on; it stops when it picks BOS.
        // Through the engine's greedy decode loop (the user's path; test/engine/engine.test.ts
        // holds it to stepped decodeStep + argmax).
        const out: number[] = [];
        for await (const id of engine.decode({ maxTokens: c.steps - c.prompt_ids.length + 1, stopIds: [BOS] })) {
          if (id === BOS) break;
          out.push(id);
          if (c.greedy_ids_first_100 && out.length <= 100) expect(id, `token ${out.length - 1}`).toBe(c.greedy_ids_first_100[out.length - 1]);
        }
        const text = tok.decode([...c.prompt_ids.slice(1), ...out]);
        expect(text.trimEnd()).toBe(c.text.trimEnd());
      }, 600_000);
    }
  });
}
