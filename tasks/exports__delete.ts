// The delete saga of an export (src/exports/sagas/delete.ts).
import { deleteExport } from "../src/exports/sagas/delete.ts";

export default deleteExport.task;
