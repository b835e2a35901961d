-- How the admin API (PostGraphile, schema gk_public) presents the first domain tables.
-- Smart comments use @behavior (PostGraphile 5), never @omit. Grants live in 900_grants.sql.

-- Keys and timestamps are set by the database, never by a client.
comment on column gk_public.teams.id is E'@behavior -insert -update';
comment on column gk_public.teams.created_at is E'@behavior -insert -update';
comment on column gk_public.robots.id is E'@behavior -insert -update';
comment on column gk_public.robots.created_at is E'@behavior -insert -update';
-- robots.team_id is updatable: a robot moves to another team with what it has
-- (sql/810_rollouts_robot_move.sql).
comment on column gk_public.robots.team_id is null;
