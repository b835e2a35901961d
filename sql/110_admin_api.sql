-- How the admin API (PostGraphile, schema gk_public) presents the first domain tables.
-- Smart comments use @behavior (PostGraphile 5), never @omit. Grants live in 900_grants.sql.

-- Keys and timestamps are set by the database, never by a client.
comment on column gk_public.teams.id is E'@behavior -insert -update';
comment on column gk_public.teams.created_at is E'@behavior -insert -update';
comment on column gk_public.robots.id is E'@behavior -insert -update';
comment on column gk_public.robots.created_at is E'@behavior -insert -update';
-- A robot's certificates and metadata belong to its team: moving it is delete + create.
comment on column gk_public.robots.team_id is E'@behavior -update';
