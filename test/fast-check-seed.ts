// Property tests draw from one fixed seed so a CI run is reproducible; FC_SEED=<n> replays another run and
// FC_SEED=random explores new cases locally (fast-check prints the seed and path of any counterexample).
import fc from 'fast-check';

const env = process.env.FC_SEED;
if (env !== 'random') fc.configureGlobal({ seed: env === undefined ? 20261127 : Number(env) });
