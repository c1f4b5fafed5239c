import { readFileSync } from 'node:fs';

/**
 * The TypeScript blocks of a Markdown file, as the doc checks see them. A ```ts block is a complete
 * module unless the HTML comment on the line before it says otherwise:
 *
 * - `<!-- doc-check: statements -->`: a fragment (an options object, a call): compiled after a prelude
 *   that imports the names users import from `@nestjs/common`, `@nestjs/core` and `nest-sessions`, and
 *   declares `secret: string`;
 * - `<!-- doc-check: members -->`: class members (handlers with their decorators): compiled inside a
 *   controller class, after the same prelude;
 * - `<!-- doc-check: file NAME -->`: a complete module that other blocks of the same file import as
 *   `./NAME` (with `.js` for `.ts`);
 * - `<!-- doc-check: skip REASON -->`: not compiled (the reason is required).
 */
export interface DocBlock {
  readonly source: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly kind: 'module' | 'statements' | 'members' | 'skip';
  /** The file name a `file` marker gives the block. */
  readonly file?: string;
  readonly code: string;
}

const MARKER = /^<!--\s*doc-check:\s*(statements|members|skip|file)\b\s*(.*?)\s*-->$/;

export function tsBlocks(path: string, name = path): DocBlock[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!;
    const lang = open[2]!;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++)
      body.push(lines[i]!.startsWith(indent) ? lines[i]!.slice(indent.length) : lines[i]!);
    if (i >= lines.length) throw new Error(`${name}:${start + 1}: a code block is never closed`);
    const marker = MARKER.exec((lines[start - 1] ?? '').trim());
    if (lang !== 'ts' && lang !== 'typescript') {
      if (marker) throw new Error(`${name}:${start}: a doc-check marker before a ${lang || 'plain'} block`);
      continue;
    }
    const kind = marker?.[1] ?? 'module';
    if (kind === 'skip' && !marker?.[2]) throw new Error(`${name}:${start}: "doc-check: skip" needs a reason`);
    if (kind === 'file' && !/^[\w.-]+\.ts$/.test(marker?.[2] ?? ''))
      throw new Error(`${name}:${start}: "doc-check: file" needs a file name such as app.module.ts`);
    blocks.push({
      source: name,
      line: start + 1,
      kind: kind === 'file' ? 'module' : (kind as DocBlock['kind']),
      file: kind === 'file' ? marker![2] : undefined,
      code: body.join('\n'),
    });
  }
  return blocks;
}

/** What fragments are compiled after. */
export const PRELUDE = `
import {
  Body, Controller, Delete, Get, Header, HttpCode, Inject, Injectable, Module, Param, Post, Req, Res, UseGuards,
  UnauthorizedException, type CanActivate, type ExecutionContext, type MiddlewareConsumer, type NestMiddleware, type NestModule,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  CookieSessionStore, InMemorySessionStore, PostgresSessionStore, RedisSessionStore, SESSION_STORE, Session, SessionsModule,
  SessionsService, SkipCsrf, TrackedSession, postgresSessionTableSql,
} from 'nest-sessions';
declare const secret: string;
`;

/** A block as a module of its own. */
export function moduleText(block: DocBlock): string {
  switch (block.kind) {
    case 'statements':
      return `${PRELUDE}\n${block.code}\nexport {};\n`;
    case 'members':
      return `${PRELUDE}\n@Controller()\nexport class DocCheckController {\n${block.code}\n}\n`;
    default:
      return `${block.code}\nexport {};\n`;
  }
}
