// Public surface of @spanscope/proxy for other workspaces (the label scheme lands here next).
export const PACKAGE_NAME = '@spanscope/proxy';
