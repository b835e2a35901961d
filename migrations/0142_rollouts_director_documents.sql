-- Up Migration
-- A robot's signed director documents move out of its robot_directors row into a table of
-- their own: marking 50,000 robots dirty then rewrites only the narrow state rows, never the
-- documents (an UPDATE copies the whole row). Both are written by one statement
-- (gk_private.director_store), so a reader sees a row and its documents together.
create table gk_public.robot_director_documents (
  robot_id uuid primary key references gk_public.robot_directors (robot_id) on delete cascade,
  targets text not null,
  snapshot text not null,
  timestamp text not null
);
comment on table gk_public.robot_director_documents is 'Each robot''s current signed director documents (what it is served).';

insert into gk_public.robot_director_documents (robot_id, targets, snapshot, timestamp)
select robot_id, targets_document, snapshot_document, timestamp_document
  from gk_public.robot_directors where timestamp_document is not null;

alter table gk_public.robot_directors drop constraint if exists robot_directors_check2;
alter table gk_public.robot_directors drop constraint if exists robot_directors_check3;
alter table gk_public.robot_directors
  drop column targets_document, drop column snapshot_document, drop column timestamp_document;
alter table gk_public.robot_directors add constraint robot_directors_check2 check ((signed_generation = 0) = (expires is null));
comment on table gk_public.robot_directors is 'Each robot''s director metadata state: dirty flag, generation, versions, expiry.';

-- Down Migration
-- The stored logic that reads the documents table goes first.
drop function if exists gk_private.director_prepare(uuid[], boolean);
drop function if exists gk_private.director_store(uuid[], bigint[], int[], int[], timestamptz[], text[], text[], text[]);
alter table gk_public.robot_directors drop constraint robot_directors_check2;
alter table gk_public.robot_directors add column targets_document text, add column snapshot_document text, add column timestamp_document text;
update gk_public.robot_directors d set targets_document = x.targets, snapshot_document = x.snapshot, timestamp_document = x.timestamp
  from gk_public.robot_director_documents x where x.robot_id = d.robot_id;
alter table gk_public.robot_directors
  add constraint robot_directors_check2 check ((signed_generation = 0) = (timestamp_document is null)),
  add constraint robot_directors_check3 check ((timestamp_document is null) = (expires is null));
drop table gk_public.robot_director_documents;
