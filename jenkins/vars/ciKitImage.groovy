import cikit.CiKit

/**
 * `ci-kit image`: lock the product's dependencies from the stable index, build
 * an image on a base pinned by digest, smoke-test it and, with push, push it.
 * The registry login is the agent's own (docker login), or the credential
 * registryCredentialsId, bound by CiKit.withRegistry around the one `sh`.
 *
 * Returns what ci-kit wrote with --output (a map of its KEY=VALUE lines).
 *
 * Parameters and defaults: cikit.CiKit.PARAMETERS.ciKitImage; help:
 * ciKitImage.txt.
 */
Map call(Map args = [:]) {
    String problem = CiKit.checkParameters('ciKitImage', args)
    if (problem) {
        error(problem)
    }
    Map cfg = CiKit.settings('ciKitImage', args)
    cfg.requirement = cfg.requirement ?: (params.REQUIREMENT ?: null)

    String outputFile = "${pwd(tmp: true)}/ci-kit-image.out"
    String command = '"$CIKIT_BIN" image'
    if (cfg.requirement) {
        command += ' "$CIKIT_REQUIREMENT"'
    }
    if (cfg.push) {
        command += ' --push "$CIKIT_IMAGE_PUSH"'
    }
    command += ' --output "$CIKIT_OUTPUT"'
    List<String> stepEnv = [
        "CIKIT_REQUIREMENT=${cfg.requirement ?: ''}",
        "CIKIT_IMAGE_PUSH=${cfg.push ?: ''}",
        "CIKIT_OUTPUT=${outputFile}",
    ]
    Map image = [:]
    dir(cfg.projectDir) {
        writeFile(file: outputFile, text: '')
        CiKit.withIndex(this, cfg, stepEnv) {
            CiKit.withRegistry(this, cfg) {
                sh(label: 'ci-kit image', script: command)
            }
        }
        String written = readFile(file: outputFile)
        image = CiKit.parseOutput(written)
        if (cfg.archive) {
            writeFile(file: 'ci-kit-image.txt', text: written)
            archiveArtifacts(artifacts: 'ci-kit-image.txt')
        }
    }
    echo("ci-kit: image ${image}")
    return image
}
