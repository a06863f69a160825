-- How an answer was made (api::trace::AnswerTrace as JSON): its steps, their sizes and times.
ALTER TABLE messages ADD COLUMN trace TEXT;
