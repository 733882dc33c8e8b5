import cikit.CiKit

/**
 * A whole declarative pipeline in one call: a product's Jenkinsfile can be
 *
 *     @Library('ci-kit') _
 *     ciKitPipeline(job: 'both', pythonVersions: ['3.11', '3.12'])
 *
 * job: 'both' (build and push, then test and promote this build's release in
 * the same build, like `ci-kit run`), 'build-and-push' (job 1; with
 * triggerJob, start job 2) or 'test-and-promote' (job 2, driven by the build
 * parameters REQUIREMENT, COMMIT, INDEX_URL, UNSTABLE_INDEX). With image:
 * true, ciKitImage runs last.
 *
 * `agent none`: the build-and-push and image stages run on a node of
 * agentLabel; ciKitTestAndPromote allocates its own nodes (one per test
 * branch, one for the promotion), so no executor waits idle during the tests.
 *
 * Parameters and defaults: cikit.CiKit.PARAMETERS.ciKitPipeline; help:
 * ciKitPipeline.txt.
 */
void call(Map args = [:]) {
    String problem = CiKit.checkParameters('ciKitPipeline', args)
    if (problem) {
        error(problem)
    }
    Map cfg = CiKit.settings('ciKitPipeline', args)
    if (!(cfg.job in CiKit.JOBS)) {
        error("ciKitPipeline: job: '${cfg.job}' is not one of ${CiKit.JOBS.join(', ')}")
    }
    boolean building = cfg.job in ['both', 'build-and-push']
    boolean testing = cfg.job in ['both', 'test-and-promote']
    Map state = [requirement: null, commit: null]

    pipeline {
        agent none
        options {
            skipDefaultCheckout()
            timeout(time: cfg.timeoutMinutes, unit: 'MINUTES')
        }
        parameters {
            string(name: 'REQUIREMENT', defaultValue: '',
                   description: 'NAME==VERSION to test and promote (set by job 1)')
            string(name: 'COMMIT', defaultValue: '', description: 'the commit job 1 built')
            string(name: 'INDEX_URL', defaultValue: '', description: 'devpi URL; empty: the step default')
            string(name: 'UNSTABLE_INDEX', defaultValue: '',
                   description: 'USER/INDEX job 1 pushed to; empty: ci-kit default')
        }
        stages {
            stage('Build and push') {
                agent {
                    label(cfg.agentLabel ?: '')
                }
                when {
                    beforeAgent true
                    expression { building }
                }
                steps {
                    script {
                        Map stepArgs = CiKit.forStep('ciKitBuildAndPush', cfg)
                        if (cfg.job == 'both') {
                            stepArgs.triggerJob = null
                        }
                        Map release = ciKitBuildAndPush(stepArgs)
                        state.requirement = release.requirement
                        state.commit = release.commit
                        state.unstableIndex = release.index
                    }
                }
            }
            stage('Test and promote') {
                when {
                    expression { testing }
                }
                steps {
                    script {
                        Map stepArgs = CiKit.forStep('ciKitTestAndPromote', cfg)
                        if (state.requirement) {
                            // 'both': this build's own release, already checked out
                            stepArgs.requirement = state.requirement
                            stepArgs.commit = state.commit
                            stepArgs.unstableIndex = cfg.unstableIndex ?: state.unstableIndex
                        }
                        Map tested = ciKitTestAndPromote(stepArgs)
                        state.requirement = tested.requirement
                        state.commit = state.commit ?: stepArgs.commit ?: params.COMMIT
                    }
                }
            }
            stage('Image') {
                agent {
                    label(cfg.agentLabel ?: '')
                }
                when {
                    beforeAgent true
                    expression { cfg.image && testing }
                }
                steps {
                    script {
                        if (state.commit) {
                            CiKit.checkoutCommit(this, scm, state.commit)  // the product's [tool.ci-kit]
                        }
                        Map stepArgs = CiKit.forStep('ciKitImage', cfg)
                        stepArgs.requirement = state.requirement
                        stepArgs.push = cfg.imagePush
                        ciKitImage(stepArgs)
                    }
                }
            }
        }
    }
}
