import cikit.CiKit

/**
 * Job 1 of ci-kit: check out (the job's SCM, with tags: a multibranch
 * checkout fetches none, and setuptools_scm needs them), then `ci-kit
 * build-and-push` (build the sdist and wheel, check them, upload them to the
 * unstable index). Runs on the current node (Declarative `agent`).
 *
 * Returns what ci-kit wrote with --output: [name:, version:, requirement:,
 * commit:, index:, files:] (files is ci-kit's JSON text). Records the
 * requirement and commit as the build's description and, with archive, as the
 * artifact ci-kit-build-and-push.txt. With triggerJob, starts job 2 with the
 * parameters REQUIREMENT, COMMIT, INDEX_URL and UNSTABLE_INDEX; a plain name
 * is job 2 next to job 1's project, also from a multibranch job
 * (CiKit.jobPath()).
 *
 * Parameters and defaults: cikit.CiKit.PARAMETERS.ciKitBuildAndPush; help:
 * ciKitBuildAndPush.txt.
 */
Map call(Map args = [:]) {
    String problem = CiKit.checkParameters('ciKitBuildAndPush', args)
    if (problem) {
        error(problem)
    }
    Map cfg = CiKit.settings('ciKitBuildAndPush', args)

    if (cfg.checkout) {
        checkout(CiKit.scmWithTags(scm))
    }
    String outputFile = "${pwd(tmp: true)}/ci-kit-build-and-push.out"
    Map release = [:]
    dir(cfg.projectDir) {
        writeFile(file: outputFile, text: '')
        CiKit.withIndex(this, cfg, ["CIKIT_OUTPUT=${outputFile}"]) {
            sh(label: 'ci-kit build-and-push',
               script: '"$CIKIT_BIN" build-and-push --output "$CIKIT_OUTPUT"')
        }
        String written = readFile(file: outputFile)
        release = CiKit.parseOutput(written)
        if (!release.requirement || !release.commit) {
            error("ci-kit build-and-push wrote no requirement= or commit= line to ${outputFile}")
        }
        if (cfg.archive) {
            writeFile(file: 'ci-kit-build-and-push.txt', text: written)
            archiveArtifacts(artifacts: 'ci-kit-build-and-push.txt')
        }
    }
    currentBuild.description = "${release.requirement} @ ${release.commit}"
    echo("ci-kit: pushed ${release.requirement} (commit ${release.commit}) to ${release.index}")

    if (cfg.triggerJob) {
        build(job: CiKit.jobPath(cfg.triggerJob.toString(), env.BRANCH_NAME), wait: cfg.waitForTrigger, propagate: cfg.waitForTrigger, parameters: [
            string(name: 'REQUIREMENT', value: release.requirement),
            string(name: 'COMMIT', value: release.commit),
            string(name: 'INDEX_URL', value: cfg.indexUrl ?: (env.CI_KIT_INDEX_URL ?: '')),
            string(name: 'UNSTABLE_INDEX', value: release.index ?: ''),
        ])
    }
    return release
}
