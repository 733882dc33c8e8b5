package org.jenkinsci.plugins.workflow.libs

import java.lang.annotation.ElementType
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy
import java.lang.annotation.Target

/**
 * Stand-in for the annotation of Jenkins' Pipeline: Groovy Libraries plugin,
 * so that `@Library('ci-kit') _` compiles as it does on a controller (which
 * imports org.jenkinsci.plugins.workflow.libs.* into every Jenkinsfile). The
 * harness loads the library from the working tree whatever the annotation names.
 */
@Retention(RetentionPolicy.SOURCE)
@Target([ElementType.LOCAL_VARIABLE, ElementType.FIELD, ElementType.TYPE, ElementType.METHOD,
         ElementType.PARAMETER, ElementType.CONSTRUCTOR, ElementType.PACKAGE, ElementType.ANNOTATION_TYPE])
@interface Library {
    String[] value()
    boolean changelog() default true
}
