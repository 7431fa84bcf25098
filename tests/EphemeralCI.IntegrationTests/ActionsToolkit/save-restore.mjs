// Runs the real @actions/cache toolkit once against the cache named by the environment
// (ACTIONS_RESULTS_URL / ACTIONS_CACHE_URL, ACTIONS_RUNTIME_TOKEN, ACTIONS_CACHE_SERVICE_V2),
// exactly as actions/cache would, and prints one line "RESULT {json}" for the test to read.
//   node save-restore.mjs save <key>                 -> {"id": <cacheId, -1 when not saved>}
//   node save-restore.mjs restore <key> [restoreKey…] -> {"hit": "<matched key>" | null}
// Paths to cache come from CACHE_PATHS (newline-separated), relative to GITHUB_WORKSPACE.
import cache from '@actions/cache';

const [operation, key, ...restoreKeys] = process.argv.slice(2);
const paths = (process.env.CACHE_PATHS ?? 'data').split('\n').filter(p => p.length > 0);

try {
  if (operation === 'save') {
    const id = await cache.saveCache(paths, key);
    console.log('RESULT ' + JSON.stringify({ id }));
  } else if (operation === 'restore') {
    const hit = await cache.restoreCache(paths, key, restoreKeys);
    console.log('RESULT ' + JSON.stringify({ hit: hit ?? null }));
  } else {
    throw new Error(`unknown operation '${operation}': use save or restore`);
  }
} catch (error) {
  console.log('RESULT ' + JSON.stringify({ error: String(error?.message ?? error) }));
  process.exitCode = 1;
}
