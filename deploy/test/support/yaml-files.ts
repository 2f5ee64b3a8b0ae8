// Strict YAML reading: a duplicate key, a tab in indentation or any parser warning is an error
// here, because the Go parsers behind kubectl, compose and Grafana differ in what they forgive.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { relativeToRepo } from './paths.ts';

export class YamlFileError extends Error {
  readonly problems: readonly string[];
  constructor(name: string, problems: readonly string[]) {
    super(`${name}: ${problems.join('; ')}`);
    this.name = 'YamlFileError';
    this.problems = problems;
  }
}

/** Problems found while parsing; empty when every document is clean. */
export function yamlProblems(source: string): string[] {
  const problems: string[] = [];
  for (const document of parseAllDocuments(source, { uniqueKeys: true, strict: true, prettyErrors: false })) {
    for (const error of document.errors) problems.push(`error: ${error.message}`);
    for (const warning of document.warnings) problems.push(`warning: ${warning.message}`);
  }
  if (source.includes('\t')) problems.push('a tab character (YAML indentation is spaces only)');
  return problems;
}

/** Every document of `source` as plain values; throws YamlFileError on any problem. */
export function parseYamlDocuments(source: string, name: string): unknown[] {
  const problems = yamlProblems(source);
  if (problems.length > 0) throw new YamlFileError(name, problems);
  return parseAllDocuments(source, { uniqueKeys: true }).map((document) => document.toJS() as unknown);
}

/** The single document of a YAML file. */
export function readYamlFile(file: string): unknown {
  const documents = parseYamlDocuments(readFileSync(file, 'utf8'), relativeToRepo(file));
  if (documents.length !== 1) {
    throw new YamlFileError(relativeToRepo(file), [`expected one document, found ${documents.length}`]);
  }
  return documents[0];
}
