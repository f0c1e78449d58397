/** Entry of the dedicated worker that runs the engine (created by src/worker/client.ts). */
import { hostEngine } from './host.ts';

hostEngine(self as unknown as Parameters<typeof hostEngine>[0]);
