<?xml version="1.0" encoding="UTF-8"?>
<!--
  Compiles ISO Schematrons (queryBinding xslt2) into SVRL-producing XSLT 2 stylesheets in one JVM,
  with the ISO skeleton XSLs that Debian's python3-lxml ships (route of ../shared/ans/SOURCES.md):
  include -> abstract expand -> queryBinding "xslt" (the XSLT 1 skeleton refuses "xslt2") ->
  iso_svrl_for_xslt1 (allow-foreign) -> stylesheet version 2.0 (the agency's rules use XPath 2).
  Parameters: skeleton (URI of the skeleton folder), base (URI of the kit's schematrons/ folder),
  schemas (space-separated paths of .sch files relative to base), out (URI of the folder receiving
  PATH.xsl, one per schema, at the same relative path so that the value-set paths still resolve).
-->
<xsl:stylesheet version="3.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
  xmlns:xs="http://www.w3.org/2001/XMLSchema" exclude-result-prefixes="xs">
  <xsl:param name="skeleton" as="xs:string" required="yes"/>
  <xsl:param name="base" as="xs:string" required="yes"/>
  <xsl:param name="schemas" as="xs:string" required="yes"/>
  <xsl:param name="out" as="xs:string" required="yes"/>

  <xsl:template name="xsl:initial-template">
    <xsl:for-each select="tokenize(normalize-space($schemas), ' ')">
      <xsl:variable name="included" select="transform(map {
          'stylesheet-location': $skeleton || '/iso_dsdl_include.xsl',
          'source-node': doc($base || '/' || .) })?output"/>
      <xsl:variable name="expanded" select="transform(map {
          'stylesheet-location': $skeleton || '/iso_abstract_expand.xsl',
          'source-node': $included })?output"/>
      <xsl:variable name="bound">
        <xsl:apply-templates select="$expanded" mode="binding"/>
      </xsl:variable>
      <xsl:variable name="compiled" select="transform(map {
          'stylesheet-location': $skeleton || '/iso_svrl_for_xslt1.xsl',
          'source-node': $bound,
          'stylesheet-params': map { QName('', 'allow-foreign'): 'true' } })?output"/>
      <xsl:result-document href="{$out}/{replace(., '\.sch$', '.xsl')}">
        <xsl:apply-templates select="$compiled" mode="version"/>
      </xsl:result-document>
    </xsl:for-each>
  </xsl:template>

  <xsl:template match="@queryBinding" mode="binding">
    <xsl:attribute name="queryBinding">xslt</xsl:attribute>
  </xsl:template>
  <xsl:template match="/*/@version" mode="version">
    <xsl:attribute name="version">2.0</xsl:attribute>
  </xsl:template>
  <xsl:mode name="binding" on-no-match="shallow-copy"/>
  <xsl:mode name="version" on-no-match="shallow-copy"/>
</xsl:stylesheet>
