/**
 * The engine's tests in one file, so one device compiles the pipelines once
 * (SwiftShader compiles slowly): golden logits and greedy tokens of both
 * families, self-consistency (chunking, decode, truncate, errors, leaks), and
 * stories260k's greedy text.
 */
import { goldenCases } from './golden.cases.ts';
import { consistencyCases } from './consistency.cases.ts';
import { storiesCases } from './stories.cases.ts';

goldenCases();
consistencyCases();
storiesCases();
