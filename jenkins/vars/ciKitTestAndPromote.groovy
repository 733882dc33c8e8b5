import cikit.CiKit

/**
 * Job 2 of ci-kit: check out the commit job 1 built, run `ci-kit test` once
 * per Python version in parallel (each installs the exact files from the
 * unstable index in a fresh environment, runs the repository's tests, attaches
 * the results to the release), publish the JUnit XML, then, only when every
 * run passed, `ci-kit promote` inside lock("ci-kit-promote-<name>"). ci-kit's
 * gate decides whether the files may be promoted and where to.
 *
 * Returns [requirement:, tests: [<python or 'default'>: exit code], passed:,
 * promoted:, promoted_to:, changed:]. Fails the build (after `junit`) when a
 * test run failed; promotion is then never attempted.
 *
 * Parameters and defaults: cikit.CiKit.PARAMETERS.ciKitTestAndPromote; help:
 * ciKitTestAndPromote.txt.
 */
Map call(Map args = [:]) {
    String problem = CiKit.checkParameters('ciKitTestAndPromote', args)
    if (problem) {
        error(problem)
    }
    Map cfg = CiKit.settings('ciKitTestAndPromote', args)
    cfg.requirement = cfg.requirement ?: params.REQUIREMENT
    cfg.commit = cfg.commit ?: params.COMMIT
    cfg.indexUrl = cfg.indexUrl ?: (params.INDEX_URL ?: null)
    cfg.unstableIndex = cfg.unstableIndex ?: (params.UNSTABLE_INDEX ?: null)
    if (!cfg.requirement) {
        error('ciKitTestAndPromote: no requirement: pass requirement: or the build parameter REQUIREMENT ' +
              '(NAME==VERSION, as job 1 prints it)')
    }
    if (cfg.checkout) {
        if (!cfg.commit) {
            error('ciKitTestAndPromote: no commit to check out: pass commit:, the build parameter COMMIT, ' +
                  'or checkout: false')
        }
        checkout([$class: 'GitSCM', branches: [[name: cfg.commit]],
                  userRemoteConfigs: scm.userRemoteConfigs,
                  extensions: [[$class: 'CleanBeforeCheckout']]])
    }

    String outputFile = "${pwd(tmp: true)}/ci-kit-promote.out"
    List<String> jobEnv = [
        "CIKIT_REQUIREMENT=${cfg.requirement}",
        "CIKIT_COMMIT=${cfg.commit ?: ''}",
        "CIKIT_JUNIT_DIR=${cfg.junitDir}",
        "CIKIT_OUTPUT=${outputFile}",
    ]
    String testCommand = '"$CIKIT_BIN" test "$CIKIT_REQUIREMENT" --junit-dir "$CIKIT_JUNIT_DIR"'
    if (cfg.commit) {
        testCommand += ' --commit "$CIKIT_COMMIT"'
    }
    Map result = [requirement: cfg.requirement, tests: [:], passed: false, promoted: false]

    dir(cfg.projectDir) {
        CiKit.withIndex(this, cfg, jobEnv) {
            dir(cfg.junitDir) {
                deleteDir()
            }
            Map branches = [:]
            List versions = cfg.pythonVersions ?: []
            if (versions) {
                for (Object version in versions) {
                    String python = version
                    branches["Python ${python}".toString()] = {
                        withEnv(["CIKIT_PYTHON=${python}"]) {
                            result.tests[python] = sh(label: "ci-kit test (Python ${python})", returnStatus: true,
                                                      script: testCommand + ' --python "$CIKIT_PYTHON"')
                        }
                    }
                }
            } else {
                branches['ci-kit test'] = {
                    result.tests['default'] = sh(label: 'ci-kit test', returnStatus: true, script: testCommand)
                }
            }
            parallel(branches)
            junit(testResults: "${cfg.junitDir}/**/*.xml", allowEmptyResults: true)
            if (cfg.archive) {
                archiveArtifacts(artifacts: "${cfg.junitDir}/**/*.xml", allowEmptyArchive: true)
            }

            List<String> failed = []
            for (Object python in result.tests.keySet()) {
                if (result.tests[python] != 0) {
                    failed.add("Python ${python}: exit ${result.tests[python]}".toString())
                }
            }
            if (failed) {
                error("ci-kit test failed (${failed.join('; ')}): ${cfg.requirement} is not promoted")
            }
            result.passed = true
            if (!cfg.promote) {
                echo("ci-kit: ${cfg.requirement} passed; promote: false, so it stays where it is")
                return
            }

            lock(resource: "ci-kit-promote-${CiKit.projectName(cfg.requirement)}") {
                writeFile(file: outputFile, text: '')
                sh(label: 'ci-kit promote',
                   script: '"$CIKIT_BIN" promote "$CIKIT_REQUIREMENT" --output "$CIKIT_OUTPUT"')
            }
            String written = readFile(file: outputFile)
            result.putAll(CiKit.parseOutput(written))
            result.promoted = true
            if (cfg.archive) {
                writeFile(file: 'ci-kit-promote.txt', text: written)
                archiveArtifacts(artifacts: 'ci-kit-promote.txt')
            }
        }
    }
    if (result.promoted) {
        currentBuild.description = "${cfg.requirement} -> ${result.promoted_to}"
        echo("ci-kit: ${cfg.requirement} promoted to ${result.promoted_to} (changed: ${result.changed})")
    }
    return result
}
