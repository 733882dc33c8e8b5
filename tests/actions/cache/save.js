// actions/cache's post step (its saveImpl): save under the key unless that key was restored.
const core = require('@actions/core');
const cache = require('@actions/cache');
require('./act-temp.js');  // RUNNER_TEMP's path as on GitHub (see there)

const lines = (name) => core.getInput(name).split('\n').map((s) => s.trim()).filter(Boolean);
// as actions/cache's isExactKeyMatch: keys compare without case (cache servers may lower them)
const sameKey = (a, b) => !!a && !!b && a.localeCompare(b, undefined, { sensitivity: 'accent' }) === 0;

async function run() {
  const key = core.getState('CACHE_KEY');
  if (!cache.isFeatureAvailable()) {
    return;
  }
  if (sameKey(core.getState('CACHE_RESULT'), key)) {
    core.info(`Cache hit occurred on the primary key ${key}, not saving cache.`);
    return;
  }
  const id = await cache.saveCache(lines('path'), key);
  if (id !== -1) {
    core.info(`Cache saved with key: ${key}`);
  }
}

run().catch((err) => core.warning(`Failed to save: ${err.message}`));
