// actions/cache's restore step (its restoreImpl), reduced to what the workflows use.
const core = require('@actions/core');
const cache = require('@actions/cache');
require('./act-temp.js');  // RUNNER_TEMP's path as on GitHub (see there)

const lines = (name) => core.getInput(name).split('\n').map((s) => s.trim()).filter(Boolean);
// as actions/cache's isExactKeyMatch: keys compare without case (cache servers may lower them)
const sameKey = (a, b) => !!a && !!b && a.localeCompare(b, undefined, { sensitivity: 'accent' }) === 0;

async function run() {
  const key = core.getInput('key', { required: true });
  core.saveState('CACHE_KEY', key);
  core.setOutput('cache-primary-key', key);  // actions/cache/restore's outputs (the main action ignores them)
  if (!cache.isFeatureAvailable()) {  // as actions/cache: no cache service is a warning
    core.warning('Cache service not available: nothing restored');
    core.setOutput('cache-hit', 'false');
    return;
  }
  const matched = await cache.restoreCache(lines('path'), key, lines('restore-keys'));
  if (!matched) {
    core.info(`Cache not found for input keys: ${[key, ...lines('restore-keys')].join(', ')}`);
    core.setOutput('cache-hit', 'false');
    return;
  }
  core.saveState('CACHE_RESULT', matched);
  core.setOutput('cache-matched-key', matched);
  core.setOutput('cache-hit', String(sameKey(matched, key)));
  core.info(`Cache restored from key: ${matched}`);
}

// as actions/cache's restoreImpl: the library only throws on invalid input (a key with a comma,
// too long), and that fails the step
run().catch((err) => core.setFailed(err.message));
