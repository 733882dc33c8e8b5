// actions/cache/save (its saveOnlyRun): save under the key input now, whatever was restored.
const core = require('@actions/core');
const cache = require('@actions/cache');
require('../act-temp.js');  // RUNNER_TEMP's path as on GitHub (see there)

const lines = (name) => core.getInput(name).split('\n').map((s) => s.trim()).filter(Boolean);

async function run() {
  const key = core.getInput('key', { required: true });
  if (!cache.isFeatureAvailable()) {
    core.warning('Cache service not available: nothing saved');
    return;
  }
  const id = await cache.saveCache(lines('path'), key);
  if (id !== -1) {
    core.info(`Cache saved with key: ${key}`);
  } else {
    core.warning('Cache save failed.');
  }
}

run().catch((err) => core.warning(`Failed to save: ${err.message}`));
