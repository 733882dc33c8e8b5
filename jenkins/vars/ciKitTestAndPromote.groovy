import cikit.CiKit

/**
 * Job 2 of ci-kit: `ci-kit test` once per Python version as parallel branches,
 * each on a node of its own (agentLabel) with a fresh checkout of the commit job
 * 1 built, its own JUnit folder and its own `junit` (suites named after the
 * Python and the file kind); then, only when every run passed, `ci-kit promote`
 * on a node, inside lock("ci-kit-promote-<name>"), then `ci-kit report <name>`
 * (archived as report-<name>.html). ci-kit's gate decides whether
 * the files may be promoted and where to.
 *
 * Allocates its nodes itself: call it outside any node (Declarative `agent
 * none`). Credentials: the test branches bind only credentialsId (attaching
 * results); promoteCredentialsId (default: credentialsId) is bound only around
 * `ci-kit promote`. With retries, a branch (or the promotion) that fails with an
 * error (a lost agent, a failed checkout) is run again; failing tests are a
 * result, not an error, and are never retried.
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
    if (cfg.checkout && !cfg.commit) {
        error('ciKitTestAndPromote: no commit to check out: pass commit:, the build parameter COMMIT, ' +
              'or checkout: false')
    }

    Map result = [requirement: cfg.requirement, tests: [:], passed: false, promoted: false]
    Map branches = [:]
    List versions = cfg.pythonVersions ?: []
    if (versions) {
        for (Object version in versions) {
            String python = version.toString()
            branches["Python ${python}".toString()] = {
                result.tests[python] = testBranch(cfg, python)
            }
        }
    } else {
        branches['ci-kit test'] = {
            result.tests['default'] = testBranch(cfg, null)
        }
    }
    parallel(branches)

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
        return result
    }

    Map promoted = [:]
    lock(resource: "ci-kit-promote-${CiKit.projectName(cfg.requirement)}") {
        onAgent(cfg) {
            promoted = promoteOnce(cfg)
        }
    }
    result.putAll(promoted)
    result.promoted = true
    currentBuild.description = "${cfg.requirement} -> ${result.promoted_to}"
    echo("ci-kit: ${cfg.requirement} promoted to ${result.promoted_to} (changed: ${result.changed})")
    return result
}

/** body on a node of cfg.agentLabel (any without), run again up to cfg.retries times after an error. */
private void onAgent(Map cfg, Closure body) {
    int attempts = (cfg.retries ?: 0) + 1
    retry(attempts) {
        if (cfg.agentLabel) {
            node(cfg.agentLabel) {
                body()
            }
        } else {
            node {
                body()
            }
        }
    }
}

/**
 * One test branch: a node, a clean checkout of the commit, `ci-kit test` for
 * python (null: ci-kit's configured versions) with its JUnit in a folder of its
 * own, `junit` of that folder (ci-kit names the suites after the run). Returns
 * ci-kit's exit code (tests that fail are a result, not an error).
 */
private Integer testBranch(Map cfg, String python) {
    String run = python ? "py${python}" : 'default'
    String junitDir = "${cfg.junitDir}/${run}"
    String command = '"$CIKIT_BIN" test "$CIKIT_REQUIREMENT" --junit-dir "$CIKIT_JUNIT_DIR"'
    if (cfg.commit) {
        command += ' --commit "$CIKIT_COMMIT"'
    }
    if (python) {  // this branch's share of the plan: the sdist is tested once, in the first branch
        command += ' --only-python "$CIKIT_PYTHON"'
    }
    List<String> branchEnv = [
        "CIKIT_REQUIREMENT=${cfg.requirement}",
        "CIKIT_COMMIT=${cfg.commit ?: ''}",
        "CIKIT_JUNIT_DIR=${junitDir}",
        "CIKIT_PYTHON=${python ?: ''}",
    ]
    Integer status = null
    onAgent(cfg) {
        if (cfg.checkout) {
            CiKit.checkoutCommit(this, scm, cfg.commit)
        }
        dir(cfg.projectDir) {
            dir(junitDir) {
                deleteDir()
            }
            CiKit.withIndex(this, cfg, branchEnv) {
                status = sh(label: python ? "ci-kit test (Python ${python})" : 'ci-kit test', returnStatus: true,
                            script: command)
            }
            publishJunit(cfg, junitDir)
        }
    }
    return status
}

/**
 * `junit` for one branch: ci-kit's own files (junit-py<X.Y>-<wheel|sdist>.xml,
 * docs/CONTRACT.md), whose suites ci-kit names "<name> Python X.Y <wheel|sdist>",
 * so the runs stay apart in Jenkins' reports without rewriting anything here.
 */
private void publishJunit(Map cfg, String junitDir) {
    junit(testResults: "${junitDir}/junit-*.xml", allowEmptyResults: true)
    if (cfg.archive) {
        archiveArtifacts(artifacts: "${junitDir}/*.xml", allowEmptyArchive: true)
    }
}

/** `ci-kit promote` with the promotion credential only; returns ci-kit's --output lines. */
private Map promoteOnce(Map cfg) {
    if (cfg.checkout) {
        CiKit.checkoutCommit(this, scm, cfg.commit)
    }
    String outputFile = "${pwd(tmp: true)}/ci-kit-promote.out"
    List<String> promoteEnv = [
        "CIKIT_REQUIREMENT=${cfg.requirement}",
        "CIKIT_OUTPUT=${outputFile}",
    ]
    Map promoted = [:]
    dir(cfg.projectDir) {
        writeFile(file: outputFile, text: '')
        CiKit.withPromotion(this, cfg, promoteEnv) {
            sh(label: 'ci-kit promote',
               script: '"$CIKIT_BIN" promote "$CIKIT_REQUIREMENT" --output "$CIKIT_OUTPUT"')
        }
        String written = readFile(file: outputFile)
        promoted = CiKit.parseOutput(written)
        if (cfg.archive) {
            writeFile(file: 'ci-kit-promote.txt', text: written)
            archiveArtifacts(artifacts: 'ci-kit-promote.txt')
        }
        report(cfg)
    }
    return promoted
}

/**
 * `ci-kit report NAME` after the promotion, without the promotion credential: the
 * model quality per version as one HTML page (docs/quality.md), archived. With no
 * evaluation records it still writes the page (versions and promotions).
 */
private void report(Map cfg) {
    String name = CiKit.projectName(cfg.requirement)
    // beside ci-kit-promote.txt, in the workspace root
    String html = "report-${name}.html"
    List<String> reportEnv = [
        "CIKIT_NAME=${name}",
        "CIKIT_HTML=${html}",
    ]
    CiKit.withIndex(this, cfg, reportEnv) {
        sh(label: 'ci-kit report', script: '"$CIKIT_BIN" report "$CIKIT_NAME" --html "$CIKIT_HTML"')
    }
    if (cfg.archive) {
        archiveArtifacts(artifacts: html, allowEmptyArchive: true)
    }
}
