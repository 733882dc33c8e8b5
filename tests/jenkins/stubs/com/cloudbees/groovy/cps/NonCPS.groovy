package com.cloudbees.groovy.cps

import java.lang.annotation.ElementType
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy
import java.lang.annotation.Target

/**
 * Stand-in for groovy-cps' annotation (workflow-cps imports com.cloudbees.groovy.cps.*
 * into every pipeline script, so `@NonCPS` needs no import on a controller). A method
 * with it is not CPS-transformed: the harness does not check its locals for
 * serialisability and rejects any step called from it, as Jenkins does.
 */
@Retention(RetentionPolicy.RUNTIME)
@Target([ElementType.METHOD, ElementType.CONSTRUCTOR])
@interface NonCPS {
}
