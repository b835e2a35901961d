// Where a team's published repository lives in the blob store (under the team's prefix, so
// purging a deleted team's blobs removes it too). Same as gk_private.tuf_blob_key in SQL.
export function teamTufPrefix(teamId: string): string {
  return `teams/${teamId}/tuf/`;
}

export function metadataKey(teamId: string, file: string): string {
  return `${teamTufPrefix(teamId)}metadata/${file}`;
}

export function targetKey(teamId: string, targetPath: string): string {
  return `${teamTufPrefix(teamId)}targets/${targetPath}`;
}

/** Consistent snapshots: versioned roles as N.role.json, timestamp unversioned. */
export function metadataFile(role: string, version: number): string {
  return role === "timestamp" ? "timestamp.json" : `${version}.${role}.json`;
}
